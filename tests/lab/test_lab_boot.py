"""A board that does not come up: `python -m lab up` says so in one line naming the board and its
console log (issue #9). A lab of its own (its own name, namespaces and state), with two boards:
board-1 boots, as the control that the lab works here; board-2's init is broken on its disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from labharness import ROOT

from lab.host import why_impossible

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.timeout(300)]

BROKEN = "dmoa-lab test: the init of this board is broken"


@pytest.fixture
def other_lab():
    """The environment of a second lab, brought down however the test ends."""
    reason = why_impossible()
    if reason:
        pytest.skip(f"no board lab on this host: {reason}")
    # Not "<name>-...": the first lab's `down` removes every namespace named so.
    name = f"{os.environ['LAB_NAME']}boot"
    env = dict(os.environ, LAB_NAME=name, LAB_STATE_DIR=f"/var/tmp/{name}", LAB_OUT_DIR=f"/var/tmp/{name}/out")
    down = [sys.executable, "-m", "lab", "down"]
    subprocess.run(down, cwd=ROOT, env=env, capture_output=True, timeout=120)
    try:
        yield env
    finally:
        subprocess.run(down, cwd=ROOT, env=env, capture_output=True, timeout=120)
        # The consoles are kept by `down` on purpose; this lab is the test's own.
        shutil.rmtree(env["LAB_STATE_DIR"], ignore_errors=True)


def test_a_board_that_does_not_boot_is_named_in_one_line_with_its_console_log(other_lab):
    state = Path(other_lab["LAB_STATE_DIR"])
    # What the overlay's upper layer holds wins over the image: board-2 boots this instead of systemd.
    init = state / "boards" / "board-2" / "upper" / "usr" / "lib" / "systemd" / "systemd"
    init.parent.mkdir(parents=True)
    init.write_text(f"#!/bin/sh\necho '{BROKEN}'\nexit 1\n")
    init.chmod(0o755)
    up = subprocess.run([sys.executable, "-m", "lab", "up", "--boards", "2"], cwd=ROOT, env=other_lab,
                        capture_output=True, text=True, timeout=240)
    assert up.returncode == 1, up.stdout + up.stderr
    console = state / "boards" / "board-2" / "console.log"
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1, up.stderr
    assert "board board-2" in lines[0] and str(console) in lines[0], lines[0]
    assert "board-1" not in lines[0], "board-1 booted and must not be named"
    assert BROKEN in console.read_text(), "the console log holds what the board printed"
    status = subprocess.run([sys.executable, "-m", "lab", "status"], cwd=ROOT, env=other_lab, capture_output=True,
                            text=True, timeout=60)
    assert "board-1: running" in status.stdout, f"control: board-1 must have booted\n{status.stdout}"
