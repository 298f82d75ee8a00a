"""Markers by suite, so that `pytest -m "not integration"` is the fast run (pure tests only), and
the fixtures every suite shares."""

from __future__ import annotations

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
