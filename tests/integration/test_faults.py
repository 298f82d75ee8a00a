"""Faults on a real mesh with real inference: a peer killed mid-layer, an agent killed
with work queued. Each test brings up its own mesh, since it breaks it."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import psutil
from support.meshes import client_for, running_mesh, wait_for_status

from edge_agent.ops import localmesh
from edge_agent.wire.messages import Progress


def test_a_peer_killed_mid_layer_is_replaced_and_the_job_completes(tmp_path, model_ready):
    with running_mesh(tmp_path, 4, max_tokens=64) as mesh:
        origin, by_name = mesh[0], {d.device: d for d in mesh}
        dispatched = threading.Event()
        victims: list[str] = []

        def watch(p: Progress) -> None:
            if p.event == "dispatched" and p.layer == 1:
                victims.append(p.detail.split()[1])  # the first peer of layer 1
                dispatched.set()

        result = {}
        with client_for(origin) as client:
            worker = threading.Thread(target=lambda: result.setdefault("answer", client.submit(
                "Describe a lighthouse in three sentences.", 1, 2, timeout_s=240, on_progress=watch)))
            worker.start()
            assert dispatched.wait(60)
            os.killpg(by_name[victims[0]].agent_pid, signal.SIGKILL)
            worker.join(240)
        answer = result["answer"]
        assert answer.ok, answer.error
        layer1 = [i.device for i in answer.inferences if i.layer == 1]
        assert victims[0] not in layer1
        assert any(f"{victims[0]} went offline" in note or f"{victims[0]} missed" in note for note in answer.notes)
        # A replacement was free (4 devices, k=2), so no answer is missing.
        assert len(layer1) == 3 and not answer.degraded
        assert len(answer.inferences) == (2 + 1) * 1 + 1


def test_an_agent_killed_with_prompts_queued_finishes_each_once_after_restart(tmp_path, model_ready):
    with running_mesh(tmp_path, 3, max_tokens=48) as mesh:
        origin = mesh[0]
        accepted: set[str] = set()
        answers = []
        lock = threading.Condition()

        def watch(p: Progress) -> None:
            if p.event == "accepted":
                with lock:
                    accepted.add(p.job_id)
                    lock.notify_all()

        with client_for(origin) as client:
            prompts = [f"Write one sentence about the number {n}." for n in range(5)]
            threads = [threading.Thread(target=lambda p=p: answers.append(
                client.submit(p, 0, 0, timeout_s=300, on_progress=watch))) for p in prompts]
            for thread in threads:
                thread.start()
            with lock:
                assert lock.wait_for(lambda: len(accepted) == len(prompts), 30), \
                    "every prompt was acknowledged before the kill"
            agent = psutil.Process(origin.agent_pid)
            group = [agent, *agent.children(recursive=True)]
            os.killpg(origin.agent_pid, signal.SIGKILL)  # the agent and its model worker
            gone, alive = psutil.wait_procs(group, timeout=10)
            assert not alive, "the agent and its worker are gone"
            started = time.time()
            restarted = localmesh.start_agent(Path(origin.directory))
            localmesh.update_agent_pid(tmp_path, origin.device, restarted.pid)
            wait_for_status(origin, origin.device, lambda s: s.online and s.ts >= started, timeout_s=60)
            for thread in threads:
                thread.join(300)
        assert sorted(a.job_id for a in answers) == sorted(accepted), "every acknowledged prompt is answered"
        assert all(a.ok and len(a.inferences) == 1 for a in answers), [a.error for a in answers]
        db = sqlite3.connect(Path(origin.directory) / "data" / "agent.db")
        states = db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        assert states == [("done", len(prompts))]
        done_per_job = db.execute(
            "SELECT job_id, COUNT(*) FROM dispatches WHERE state='done' GROUP BY job_id").fetchall()
        assert sorted(n for _, n in done_per_job) == [1] * len(prompts), "no prompt was answered twice"
