"""The benchmark runner's table: what `docs/performance.md` shows of each figure."""

from benchmarks.__main__ import table
from benchmarks.common import Figure


def test_a_figure_is_its_value_over_its_baseline_with_its_verdict() -> None:
    over = Figure("2", "end-to-end / critical path", 1.53, 1.5, "s", "critical path", "<= 1.02", False, 10)
    row = table([over])[2]
    assert "| **1.020** ✗ | <= 1.02 | 10 |" in row


def test_nothing_over_nothing_is_shown_as_no_ratio_not_nan() -> None:
    idle = Figure("4", "idle worker per board at n=16", 0.0, 0.0, "cores", "same at n=1")
    row = table([idle])[2]
    assert "nan" not in row
    assert "| same at n=1: 0 | — | — |" in row


def test_the_printed_line_says_no_ratio_too() -> None:
    idle = Figure("4", "idle worker per board at n=16", 0.0, 0.0, "cores", "same at n=1")
    assert idle.line().endswith("= — (n=0)")
