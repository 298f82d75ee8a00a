"""Fixtures for integration tests: real mosquitto brokers bridged on loopback, real
agents, and (unless a test asks for the fake engine) real llama.cpp inference."""

from __future__ import annotations

import shutil
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
