"""Fixtures of the playbook tests (helpers live in playbook_harness.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playbook_harness import VirtualMesh


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ansible: runs ansible-playbook, ansible-lint or yamllint")


@pytest.fixture(scope="session")
def virtual_mesh(tmp_path_factory: pytest.TempPathFactory):
    for needed in ("mosquitto", "openssl"):
        if shutil.which(needed) is None and not Path("/usr/sbin", needed).exists():
            pytest.fail(f"{needed} is not installed (make setup installs mosquitto)")
    mesh = VirtualMesh(tmp_path_factory.mktemp("virtual-mesh"))
    try:
        yield mesh
    finally:
        mesh.teardown()
