"""Concurrent submissions through one SubmitClient, and an interrupted run that
resumes, on a fast mesh of fake-engine devices."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.processes import interruptible

from edge_agent.client.submit import SubmitClient
from edge_agent.wire.mqtt import BrokerAddress

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_one_client_submits_from_many_threads(fake_mesh):
    devices = [d.device for d in fake_mesh]
    with SubmitClient(BrokerAddress.parse(fake_mesh[0].broker)) as client:
        def one(n: int):
            job_id = f"conc-{n}"
            answer = client.submit(f"question {n}", 1, 1, job_id=job_id, timeout_s=60,
                                   device=devices[n % len(devices)])
            return n, job_id, answer

        with ThreadPoolExecutor(max_workers=18) as pool:
            results = list(pool.map(one, range(18)))
    for n, job_id, answer in results:
        assert answer.ok and answer.job_id == job_id
        assert answer.origin == devices[n % len(devices)]
        assert len(answer.inferences) == 3
        assert f"question {n}" in answer.answer  # the fake engine echoes the prompt it answered


def test_an_interrupted_run_resumes_where_it_stopped(fake_mesh, tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([{"instruction": f"Say the number {i}.", "dataset": "t"} for i in range(8)]))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "edge_agent", "eval", str(prompts), "--configs", "M1k2", "--rate", "0.4",
               "--limit", "8", "--broker", fake_mesh[0].broker, "--out", str(out), "--no-plot"]
    records = out / "M1k2" / "records.jsonl"
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if records.is_file() and records.read_text().count('"record": "job"') >= 2:
            break
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode != 0, err
    assert "rerun the same command to resume" in err
    done_before = {r["index"]: r["job_id"] for r in map(json.loads, records.read_text().splitlines())
                   if r["record"] == "job" and r["ok"]}
    assert 2 <= len(done_before) < 8

    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    jobs = [r for r in map(json.loads, records.read_text().splitlines()) if r["record"] == "job"]
    finished = {r["index"]: r["job_id"] for r in jobs if r["ok"]}
    assert sorted(finished) == list(range(8))
    assert all(finished[i] == done_before[i] for i in done_before)  # kept, not run again
    assert sum(1 for r in jobs if r["index"] in done_before) == len(done_before)
    assert len(json.loads((out / "M1k2" / "model_outputs.json").read_text())) == 8
    assert "| M=1, k=2 |" in (out / "report.md").read_text()
    assert not (out / "report.png").exists()


def test_a_configuration_larger_than_the_mesh_is_refused_before_any_work(fake_mesh, tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([{"instruction": "Hello?", "dataset": "t"}]))
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "eval", str(prompts), "--configs", "M0k0,M1k3", "--rate", "1",
         "--broker", fake_mesh[0].broker, "--out", str(out), "--no-plot"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "M1k3 need(s) more devices than the 3 online" in result.stderr
    assert not (out / "M0k0" / "records.jsonl").exists()
