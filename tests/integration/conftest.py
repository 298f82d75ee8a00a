"""Fixtures for integration tests: real mosquitto brokers bridged on loopback, real
agents, and (unless a test asks for the fake engine) real llama.cpp inference."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from meshutil import MODEL

from edge_agent.errors import ModelError
from edge_agent.models import card, verify


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def needs_mosquitto():
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make setup`")


@pytest.fixture(scope="session")
def model_ready():
    try:
        verify(card(MODEL))
    except ModelError as err:
        pytest.fail(f"{err} (run `make setup`)")


# -- the fault matrix's table -------------------------------------------------------------
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
