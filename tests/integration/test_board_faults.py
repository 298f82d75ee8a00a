"""Faults of a board's own making, on a real mesh: a store damaged while the agent was down, and a
second board running with the same device id (a cloned SD card)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from support.meshes import client_for, running_mesh, wait_for_status

from edge_agent.ops import localmesh
from edge_agent.ops.localmesh import agent_settings

pytestmark = pytest.mark.faults


def stop(pid: int, sig: int = signal.SIGKILL) -> None:
    os.killpg(pid, sig)
    gone, alive = psutil.wait_procs([psutil.Process(pid)], timeout=10)
    assert not alive


def test_a_store_damaged_while_the_agent_was_down_is_moved_aside_and_said_so(tmp_path, reliability):
    with running_mesh(tmp_path, 1, engine="fake", fake_seconds=0.05) as (device,):
        with client_for(device) as client:
            assert client.submit("fill the store", 0, 0, timeout_s=30).ok
        stop(device.agent_pid, signal.SIGTERM)  # a clean stop folds the WAL into the file
        store = Path(device.directory) / "data" / "agent.db"
        assert not Path(f"{store}-wal").exists()
        with open(store, "r+b") as f:  # flipped bits in the file's first sector
            head = f.read(100)
            f.seek(0)
            f.write(bytes(b ^ 0x24 for b in head))
        started = time.time()
        restarted = localmesh.start_agent(Path(device.directory))
        localmesh.update_agent_pid(tmp_path, device.device, restarted.pid)
        status = wait_for_status(device, device.device, lambda s: s.online and s.ts >= started)
        recover_s = time.time() - started
        (alert,) = status.alerts
        assert alert.startswith(f"the store {store} was damaged") and "started empty" in alert
        moved = alert.split("moved aside to ")[1].split(";")[0]
        assert (store.parent / moved).exists()
        assert moved in (Path(device.directory) / "agent.log").read_text(), "the log names the file"
        with client_for(device) as client:
            assert client.submit("after the damage", 0, 0, timeout_s=30).ok, "the agent serves on"
        reliability(scenario="store bit-flipped while the agent was down", trials=1, recover_s=recover_s,
                    figure="detected at start, moved aside, named in the log and the status; serving again")


def test_a_device_id_claimed_by_two_boards_is_reported_within_a_minute(tmp_path, reliability):
    with running_mesh(tmp_path / "mesh", 3, engine="fake", fake_seconds=0.05) as mesh:
        # A clone of edge-2 on a fourth address: same device id, same peers, its own broker.
        clone_host = mesh[0].host.rsplit(".", 1)[0] + ".4"  # the fourth address of the mesh's block
        layout = [(d.device, d.host, d.port) for d in mesh if d.device != "edge-2"] + [("edge-2", clone_host, 1883)]
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        settings = agent_settings("fake", "fake", 0.05, ("admission=accept",))
        clone = localmesh._start_device(mosquitto, tmp_path / "clone", "edge-2", clone_host, 1883, layout, settings)
        try:
            started = time.monotonic()
            seen = wait_for_status(mesh[0], "edge-1", lambda s: "edge-2" in s.conflicts, timeout_s=60)
            assert seen.conflicts == ["edge-2"]
            original = wait_for_status(mesh[1], "edge-2", lambda s: bool(s.alerts), timeout_s=60)
            (alert,) = original.alerts
            assert re.fullmatch(r"another board also runs as edge-2 \(seen by edge-[13]\)", alert), alert
            detected_s = time.monotonic() - started
            assert detected_s < 60
            reliability(scenario="two boards with one device id (a cloned SD card)", trials=1, recover_s=None,
                        figure=f"reported by a peer and by the original board within {detected_s:.0f} s (≤ 60 s)")
        finally:
            for pid in (clone.agent_pid, clone.broker_pid):
                stop(pid)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "8m"):
    """A small tmpfs mounted over where, its files carried over; unmounted however the test ends."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    keep = where.with_name(where.name + ".keep")
    shutil.copytree(where, keep)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        shutil.copytree(keep, where, dirs_exist_ok=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(where: Path) -> Path:
    filler = where / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def test_a_full_disk_refuses_new_work_plainly_keeps_what_was_acknowledged_and_recovers(tmp_path, reliability):
    with running_mesh(tmp_path, 1, engine="fake", fake_seconds=3.0) as (device,):
        stop(device.agent_pid, signal.SIGTERM)
        with small_tmpfs(Path(device.directory) / "data") as data:
            started = time.time()
            agent = localmesh.start_agent(Path(device.directory))
            localmesh.update_agent_pid(tmp_path, device.device, agent.pid)
            wait_for_status(device, device.device, lambda s: s.online and s.ts >= started)
            answers: list = []
            running = threading.Event()
            with client_for(device) as client:
                held = threading.Thread(target=lambda: answers.append(client.submit(
                    "acknowledged before the disk fills", 0, 0, timeout_s=90,
                    on_progress=lambda p: p.event == "dispatched" and running.set())))
                held.start()
                assert running.wait(30)
                wait_for_status(device, device.device, lambda s: s.busy)  # the first prompt is being answered
                filler = fill(data)
                full = wait_for_status(device, device.device, lambda s: any("disk" in a for a in s.alerts),
                                       timeout_s=30)
                assert "refused until it has room" in full.alerts[0]
                asked = time.monotonic()
                refused = client.submit("sent while the disk is full", 0, 0, timeout_s=30)
                refusal_s = time.monotonic() - asked
                assert not refused.ok and refused.error == (f"device {device.device} cannot take prompts now: "
                                                            "its disk is full")
                freed = time.monotonic()
                filler.unlink()
                held.join(60)
                recover_s = time.monotonic() - freed
                assert [a.ok for a in answers] == [True], "the acknowledged prompt was answered, once"
                assert client.submit("after the disk has room", 0, 0, timeout_s=30).ok
            assert agent.poll() is None, "the same agent served again, without a restart"
            wait_for_status(device, device.device, lambda s: not s.alerts)
            stop(agent.pid, signal.SIGTERM)
    reliability(scenario="disk full on the data directory (8 MB tmpfs)", trials=1, lost=0, duplicated=0,
                recovered=0, recover_s=recover_s,
                figure=f"new prompt refused in {refusal_s:.2f} s with a clear error; the held answer delivered "
                       f"{recover_s:.1f} s after space returned, by the same process")
