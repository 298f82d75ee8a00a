"""The edge-agent command as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
from support.meshes import address_block
from support.processes import interruptible

CLI = [sys.executable, "-m", "edge_agent"]
BLOCK = address_block()
"""The loopback block of this module's fake mesh."""


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fake_mesh(tmp_path):
    directory = str(tmp_path / "mesh")
    up = run("mesh", "up", "--devices", "3", "--dir", directory, "--engine", "fake", "--fake-seconds", "0.1",
             "--address-base", BLOCK)
    assert up.returncode == 0, up.stderr
    try:
        yield directory
    finally:
        run("mesh", "down", "--dir", directory)


def test_mesh_lifecycle_submit_and_status(fake_mesh):
    rows = json.loads(run("mesh", "status", "--dir", fake_mesh, "--json").stdout)
    assert [(r["device"], r["broker"]) for r in rows] == [
        ("edge-1", f"{BLOCK}.1:1883"), ("edge-2", f"{BLOCK}.2:1883"), ("edge-3", f"{BLOCK}.3:1883")]
    pids = [r[k] for r in rows for k in ("broker_pid", "agent_pid")]
    assert all(psutil.pid_exists(p) for p in pids)

    out = run("submit", "what is a mesh?", "--layers", "1", "--proposers", "2", "--broker", f"{BLOCK}.2:1883",
              "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    for key in ("job_id", "answer", "origin", "layers", "proposers", "degraded", "latency_s", "inferences"):
        assert key in answer
    assert answer["origin"] == "edge-2" and len(answer["inferences"]) == 4
    assert {tuple(sorted(i)) for i in answer["inferences"]} >= {tuple(sorted(
        ["layer", "role", "device", "seconds", "prompt_tokens", "completion_tokens", "queue_wait_s", "ok",
         "truncated"]))}
    assert [i["layer"] for i in answer["inferences"] if i["role"] == "aggregate"] == [2]
    assert "layer 1/2: answer" in out.stderr, "progress is shown as it happens"

    text = run("submit", "hello", "-M", "0", "-k", "0", "--broker", f"{BLOCK}.3:1883")
    assert text.returncode == 0 and "hello" in text.stdout

    statuses = json.loads(run("status", "--broker", f"{BLOCK}.1:1883", "--json").stdout)
    assert [s["device"] for s in statuses] == ["edge-1", "edge-2", "edge-3"]
    assert all(s["online"] and s["model"] == "fake" for s in statuses)

    down = run("mesh", "down", "--dir", fake_mesh)
    assert down.returncode == 0
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


@pytest.mark.parametrize(
    "args, message",
    [
        (["submit", "x", "--broker", f"{BLOCK}.200:1883", "--timeout", "5"], "cannot reach broker"),
        (["submit", "x", "--broker", "nonsense:port"], "invalid broker address"),
        (["mesh", "down", "--dir", "/nonexistent/mesh"], "no local mesh"),
        (["models", "verify", "no-such-model"], "no model card named"),
        (["run", "--config", os.devnull], "'device' is required"),
        (["mesh", "up", "--address-base", "10.0.0", "--devices", "1"], "loopback"),
        (["status", "--password-file", "/nonexistent/password"], "cannot read the broker password file"),
        (["submit", "x", "--password-file", "/nonexistent/password"], "cannot read the broker password file"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(args, message):
    out = run(*args, timeout=60)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_ctrl_c_exits_130_without_a_traceback(fake_mesh):
    waiting = subprocess.Popen([*CLI, "status", "--broker", f"{BLOCK}.1:1883", "--wait", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        out, err = waiting.communicate(timeout=3)
        pytest.fail(f"the command ended before it was interrupted: {err}")
    except subprocess.TimeoutExpired:
        pass  # it is collecting statuses: interrupt it as a user would
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 130 and err.strip() == "interrupted", err


def test_submit_to_an_offline_device_fails_cleanly(fake_mesh):
    out = run("submit", "x", "--broker", f"{BLOCK}.1:1883", "--device", "edge-9", "--timeout", "5")
    assert out.returncode == 1 and "never reported" in out.stderr


def test_demo_answers_a_prompt_on_a_real_model_and_cleans_up():
    out = run("demo", "--address-base", address_block(), timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "layer 2 aggregate edge-1" in out.stderr
    assert out.stdout.strip(), "the answer is printed"
    final = [line for line in out.stderr.splitlines() if "layer 2 aggregate edge-1" in line][0]
    assert int(final.split("+")[-1].split()[0]) < 512, "the final answer ended by itself, within final_max_tokens"
    assert "mesh is down" in out.stderr
    started_here = [p for p in psutil.process_iter(["cmdline", "status"])
                    if "edge-demo-" in " ".join(p.info["cmdline"] or [])
                    and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert started_here == [], "the demo's brokers and agents (configs under edge-demo-*) are gone"
