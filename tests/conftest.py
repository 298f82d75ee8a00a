"""Markers by suite, so that `pytest -m "not integration"` is the fast run (pure tests only), and
the fixtures every suite shares."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support.meshes import MODEL

from edge_agent.errors import ModelError
from edge_agent.ops.modelcards import card, verify

# Suites whose every test starts processes: brokers, agents, ansible-playbook, boards.
PROCESS_SUITES = ("integration", "e2e", "ansible", "lab")
# Fixtures that start processes, for the suites that mix pure and process tests.
PROCESS_FIXTURES = {"mesh", "small_mesh", "fake_mesh", "llama_mesh", "judge_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        suite = Path(str(item.fspath)).relative_to(root).parts[0]
        if suite in PROCESS_SUITES or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        if suite == "e2e":
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def model_ready() -> None:
    """The real model is on disk and verified (make setup fetches it)."""
    try:
        verify(card(MODEL))
    except ModelError as err:
        pytest.fail(f"{err} (run `make setup`)")


# The fault matrix's table: each scenario (tests/integration, tests/lab) records its row here.
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
    path = Path(target)
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    table, _, tail = rest.partition(END)
    header = ["| scenario | trials | lost | duplicated | recovered | time to recover | pass figure |",
              "|---|---|---|---|---|---|---|"]
    # A run that selected some scenarios only (one file, one marker) keeps the others' last rows.
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| ") and line not in header}
    for r in _ROWS:
        recover = "-" if r.get("recover_s") is None else f"{r['recover_s']:.1f} s"
        rows[str(r["scenario"])] = (f"| {r['scenario']} | {r['trials']} | {r.get('lost', '-')} | "
                                    f"{r.get('duplicated', '-')} | {r.get('recovered', '-')} | {recover} | "
                                    f"{r['figure']} |")
    lines = [BEGIN, "", *header, *rows.values(),
             "", f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {os.cpu_count()} cores.", "", END]
    path.write_text(head + "\n".join(lines) + tail)
