"""The wall clock of an origin board stepped by an hour mid-job, as an RTC-less Raspberry Pi's is
when NTP sets it after boot: no deadline fires early, and none never fires. The origin's agent
runs under libfaketime, its wall clock moved by writing an offset to a file; its monotonic clock
is left alone, as the kernel leaves it when the real clock is stepped."""

from __future__ import annotations

import glob
import os
import signal
from pathlib import Path

import psutil
import pytest
from support.meshes import client_for, running_mesh, wait_for_status

from edge_agent.ops import localmesh
from edge_agent.wire.messages import Progress

pytestmark = pytest.mark.faults

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), "")


@pytest.fixture
def stepped_mesh(tmp_path):
    """Three devices; edge-1's agent runs with a wall clock the test steps through `offset`."""
    assert LIBFAKETIME, "libfaketime is installed by `make setup` (scripts/ensure-faketime.sh)"
    offset = tmp_path / "clock-offset"
    offset.write_text("+0\n")
    with running_mesh(tmp_path / "mesh", 3, engine="fake", fake_seconds=0.5, task_timeout_s=3.0,
                      peer_stale_s=60.0) as mesh:
        origin = mesh[0]
        os.killpg(origin.agent_pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(origin.agent_pid)], timeout=10)
        # Its model worker inherits libfaketime, under which any time.sleep fails once the clock
        # is stepped: the origin's own inferences take no time (its peers' 0.5 s).
        config = Path(origin.directory) / "agent.yaml"
        config.write_text(config.read_text().replace("fake_seconds: 0.5", "fake_seconds: 0.0"))
        agent = localmesh.start_agent(Path(origin.directory), env={
            "LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        localmesh.update_agent_pid(tmp_path / "mesh", origin.device, agent.pid)
        wait_for_status(origin, origin.device, lambda s: s.online and len(s.peers) == 2, timeout_s=60)
        yield mesh, offset


def submit_stepping_the_clock(origin, offset: Path, step: str):
    """An M=1, k=2 job at the origin; once its first layer is out, the origin's wall clock moves
    by `step`."""
    def on_progress(p: Progress) -> None:
        if p.event == "dispatched" and p.layer == 1:
            offset.write_text(step + "\n")

    with client_for(origin) as client:
        return client.submit("Why do leaves fall?", 1, 2, timeout_s=60, on_progress=on_progress)


def test_a_clock_stepped_an_hour_forward_fires_no_deadline_early(stepped_mesh, reliability):
    mesh, offset = stepped_mesh
    answer = submit_stepping_the_clock(mesh[0], offset, "+3600")
    # The step happened: the origin's wall clock says the job took an hour.
    assert answer.latency_s > 3000, answer.latency_s
    assert answer.ok and not answer.degraded, answer.notes
    assert not [n for n in answer.notes if "deadline" in n], answer.notes
    reliability(scenario="the origin's wall clock stepped 1 hour forward mid-job", trials=1, lost=0, duplicated=0,
                recovered=0, recover_s=None, figure="no deadline fired early (task deadline 3 s); answered, "
                                                    "not degraded")


def test_a_clock_stepped_an_hour_back_still_fires_the_deadlines(stepped_mesh, reliability):
    mesh, offset = stepped_mesh
    peers = [d.agent_pid for d in mesh[1:]]
    # Frozen before the job, not on its "dispatched" event: a peer answers 0.5 s after its task
    # arrives, sooner than that event may reach this test on a loaded machine. Their last status
    # stays fresh (stale after 60 s), so the origin still sends them the tasks.
    for pid in peers:
        os.kill(pid, signal.SIGSTOP)
    try:
        answer = submit_stepping_the_clock(mesh[0], offset, "-3600")
    finally:
        for pid in peers:
            os.kill(pid, signal.SIGCONT)
    assert answer.latency_s < -3000, answer.latency_s  # the step happened: an hour back
    missed = [n for n in answer.notes if "missed its deadline" in n]
    assert len(missed) == 2 and answer.ok and answer.degraded, answer.notes
    reliability(scenario="the origin's wall clock stepped 1 hour back mid-job, both peers frozen", trials=1,
                lost=0, duplicated=0, recovered=0, recover_s=None,
                figure="both task deadlines (3 s) fired on time; answered by the origin alone, degraded")
