"""`edge-agent plan --broker` against a running local mesh (fake engine, 0.2 s per inference)."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.meshes import address_block

from edge_agent.client.status import read_statuses
from edge_agent.client.submit import SubmitClient
from edge_agent.ops import localmesh
from edge_agent.ops.localmesh import agent_settings
from edge_agent.wire.mqtt import BrokerAddress

pytestmark = pytest.mark.e2e

BASE = address_block()
FAKE_SECONDS = 0.2


def test_plan_reads_measured_alphas_from_a_running_mesh(tmp_path: Path) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make setup`")
    settings = agent_settings("fake", "fake", FAKE_SECONDS, ("status_interval_s=0.5", "peer_stale_s=5"))
    root = tmp_path / "mesh"
    devices = localmesh.up(3, root, settings, address_base=BASE, timeout_s=45)
    try:
        first = devices[0]
        with SubmitClient(BrokerAddress(first.host, first.port), first.device) as client:
            for i in range(3):  # k = 2 puts every device in every layer: each one measures α
                answer = client.submit(f"prompt {i}", layers=1, proposers=2, timeout_s=20)
                assert answer.ok, answer.error
        deadline = time.monotonic() + 10
        while True:  # the statuses carry α once each agent has published after its inferences
            statuses = [s for s in read_statuses(first.host, first.port, wait_s=0.5) if s["online"]]
            if len(statuses) == 3 and all(s["alpha"] is not None for s in statuses):
                break
            assert time.monotonic() < deadline, f"no α in the statuses: {statuses}"
        published = sorted(s["alpha"] for s in statuses)
        done = subprocess.run(
            [sys.executable, "-m", "edge_agent", "plan", "--broker", first.broker, "--rate", "0.1", "--json"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        plan = json.loads(done.stdout)
        assert sorted(plan["alphas"]) == pytest.approx(published, abs=0.02)
        assert all(a == pytest.approx(FAKE_SECONDS, rel=0.25) for a in plan["alphas"])
        best = plan["recommended"]
        assert best is not None and best["stable"] and best["rho"] < 1
        # α ≈ 0.2 s at 0.1 prompt/s: even M=3, k=2 (10 inferences) is at ρ ≈ 0.2.
        assert (best["layers"], best["proposers"]) == (3, 2)
        assert best["rho"] == pytest.approx(10 * 0.1 * max(plan["alphas"]))
    finally:
        localmesh.down(root)
