"""The fault matrix's table: each scenario of tests/integration records its row here."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

# Each scenario records one row; `make faults` sets DMOA_RELIABILITY_TABLE to docs/reliability.md
# and the rows replace the table between the markers there.
_ROWS: list[dict[str, object]] = []
BEGIN, END = "<!-- fault-matrix:begin -->", "<!-- fault-matrix:end -->"


@pytest.fixture
def reliability():
    """Call with scenario=..., trials=..., lost=..., duplicated=..., recovered=..., recover_s=..., figure=..."""
    return lambda **row: _ROWS.append(row)


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("DMOA_RELIABILITY_TABLE")
    if not target or not _ROWS:
        return
    lines = [BEGIN, "", "| scenario | trials | lost | duplicated | recovered | time to recover | pass figure |",
             "|---|---|---|---|---|---|---|"]
    for r in _ROWS:
        recover = "-" if r.get("recover_s") is None else f"{r['recover_s']:.1f} s"
        lines.append(f"| {r['scenario']} | {r['trials']} | {r.get('lost', '-')} | {r.get('duplicated', '-')} | "
                     f"{r.get('recovered', '-')} | {recover} | {r['figure']} |")
    lines += ["", f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} cores.", "", END]
    path = Path(target)
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(head + "\n".join(lines) + tail)
