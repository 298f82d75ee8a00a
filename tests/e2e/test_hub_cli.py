"""`edge-agent mesh up --topology hub` as a user runs it: devices bridged to a local RabbitMQ cluster."""

from __future__ import annotations

import json
import os

import psutil
from test_cli import run

from edge_agent.ops import hubcluster


def test_a_hub_mesh_comes_up_answers_and_goes_down_leaving_no_process(tmp_path):
    directory = str(tmp_path / "mesh")
    up = run("mesh", "up", "--devices", "3", "--dir", directory, "--engine", "fake", "--fake-seconds", "0.1",
             "--address-base", "127.0.75", "--topology", "hub", "--hub-nodes", "2", "--hub-base", "127.0.76",
             timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        conf = (tmp_path / "mesh" / "edge-2" / "mosquitto.conf").read_text()
        assert "address 127.0.76.2:1883 127.0.76.1:1883" in conf and conf.count("\nconnection ") == 1
        cluster = hubcluster.load(tmp_path / "mesh" / "hub")
        pids = [n.pid for n in cluster.nodes] + [cluster.epmd_pid]
        assert all(psutil.pid_exists(p) for p in pids)
        out = run("submit", "what is a hub?", "--layers", "1", "--proposers", "2", "--broker", "127.0.75.2:1883",
                  "--json", timeout=120)
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert sorted({i["device"] for i in answer["inferences"]}) == ["edge-1", "edge-2", "edge-3"]
    finally:
        down = run("mesh", "down", "--dir", directory, timeout=120)
    assert down.returncode == 0, down.stderr
    rows = json.loads(run("mesh", "status", "--dir", directory, "--json").stdout)
    assert not any(r["broker_running"] or r["agent_running"] for r in rows)
    left = [p for p in psutil.process_iter(["pid"]) if _in_groups(p.pid, pids)]
    assert not left, f"processes of the hub left running: {left}"


def _in_groups(pid: int, groups: list[int]) -> bool:
    try:
        return os.getpgid(pid) in groups and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False


