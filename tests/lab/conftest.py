"""The board lab for the tests: its own name, namespaces and state, so a lab started with
`make lab` is left alone; up once per session, down however the tests went."""

from __future__ import annotations

import os
import shutil

# Before the lab package is imported: its paths are read from the environment at import time.
# LAB_TEST_NAME lets two checkouts run their lab tests on one host at once.
_name = os.environ.get("LAB_TEST_NAME", "dmoa-labtest")
os.environ["LAB_NAME"] = _name
os.environ["LAB_STATE_DIR"] = f"/var/tmp/{_name}"
os.environ["LAB_OUT_DIR"] = f"/var/tmp/{_name}/out"

import pytest  # noqa: E402
from labharness import BOARDS, Play  # noqa: E402

from lab import lab as lablib  # noqa: E402
from lab.host import why_impossible  # noqa: E402
from lab.paths import OUT  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: boots systemd boards with systemd-nspawn and runs the playbook on them")


@pytest.fixture(scope="session")
def lab():
    reason = why_impossible()
    if reason:
        pytest.skip(f"no board lab on this host: {reason}")
    lablib.down()  # what an interrupted session may have left
    shutil.rmtree(OUT, ignore_errors=True)  # a fresh mesh CA and passwords for every session
    try:
        yield lablib.up(len(BOARDS))
    finally:
        lablib.down()


@pytest.fixture(scope="session")
def first_play(lab):
    play = Play.start(lab)
    if play.result.returncode != 0:
        pytest.fail("the first run of site.yml failed:\n" + play.result.stdout[-6000:] + play.result.stderr[-2000:])
    return play
