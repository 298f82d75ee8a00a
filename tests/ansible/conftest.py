"""Markers of the playbook tests (helpers live in playbook_harness.py)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ansible: runs ansible-playbook, ansible-lint or yamllint")
