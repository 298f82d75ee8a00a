"""Distributed MoA on a real 4-device mesh with real llama.cpp inference."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.meshes import client_for, running_mesh, wait_for_status

from edge_agent.client.status import read_statuses
from edge_agent.wire import topics


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, model_ready):
    with running_mesh(tmp_path_factory.mktemp("moa"), 4, max_tokens=24) as devices:
        yield devices


@pytest.mark.parametrize("layers", [0, 1, 2])
@pytest.mark.parametrize("proposers", [1, 2])
def test_exactly_k_plus_1_times_m_plus_1_inferences_on_the_right_devices(mesh, layers, proposers):
    origin = mesh[layers % len(mesh)]
    with client_for(origin) as client:
        answer = client.submit("Name one planet.", layers, proposers, timeout_s=240)
    assert answer.ok, answer.error
    assert answer.answer.strip()
    assert not answer.degraded
    assert len(answer.inferences) == (proposers + 1) * layers + 1
    names = {d.device for d in mesh}
    for layer in range(1, layers + 1):
        devices = [i.device for i in answer.inferences if i.layer == layer]
        assert origin.device in devices, "the origin answers in every layer"
        assert len(devices) == len(set(devices)) == proposers + 1, "k distinct peers plus the origin"
        assert set(devices) <= names
        assert all(i.role == "propose" and i.completion_tokens > 0 for i in answer.inferences if i.layer == layer)
    final = [i for i in answer.inferences if i.layer == layers + 1]
    assert [(i.device, i.role) for i in final] == [(origin.device, "aggregate")]
    if layers:
        assert final[0].prompt_tokens > max(i.prompt_tokens for i in answer.inferences if i.layer == 1), (
            "the aggregator reads the previous layer's answers"
        )


def hostile_payloads(device: str) -> list[tuple[str, bytes]]:
    """Messages that once stopped an agent, or might: malformed, mistyped, hostile ids, deep nesting."""
    task = {"v": 1, "kind": "task", "task_id": "t", "job_id": "j", "origin": "edge-1", "layer": 1,
            "role": "propose", "prompt": "p"}
    result = {"v": 1, "kind": "result", "task_id": "t", "job_id": "j", "device": "edge-1", "layer": 1,
              "role": "propose", "ok": True}
    submit = {"v": 1, "kind": "submit", "job_id": "j", "prompt": "p", "layers": 1, "proposers": 1}
    raw = [b"\x00\xff garbage", b"{}", json.dumps({"v": 99, "kind": "task"}).encode(),
           json.dumps({"v": 1, "kind": "task", "task_id": 5}).encode(), b"x" * 300_000,
           b"[" * 60_000 + b"]" * 60_000, json.dumps(task).replace('"p"}', '"\\ud800"}').encode()]
    hostile = [json.dumps({**task, "job_id": "../../etc"}), json.dumps({**task, "origin": "#"}),
               json.dumps({**task, "references": [[[]]]})]
    return ([(topics.task(device), p) for p in raw] + [(topics.task(device), p.encode()) for p in hostile]
            + [(topics.result(device), json.dumps({**result, "device": "+"}).encode()),
               (topics.result(device), b"[" * 60_000),
               (topics.submit(device), json.dumps({**submit, "layers": 999}).encode()),
               (topics.submit(device), json.dumps({**submit, "reply_to": "../x"}).encode())])


def test_hostile_messages_on_every_inbound_topic_are_counted_and_the_agent_keeps_serving(mesh):
    target = mesh[1]
    before = {s["device"]: s for s in read_statuses(target.host, target.port, 1.5)}[target.device]["rejected"]
    raw = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="garbage-test")
    raw.connect(target.host, target.port)
    raw.loop_start()
    payloads = hostile_payloads(target.device)
    for topic, payload in payloads:
        raw.publish(topic, payload, qos=1).wait_for_publish(5)
    raw.loop_stop()
    raw.disconnect()
    counted = wait_for_status(target, target.device, lambda s: s.rejected >= before + len(payloads), timeout_s=20)
    assert counted.rejected == before + len(payloads)
    with client_for(target) as client:
        answer = client.submit("Say hello.", 1, 1, timeout_s=240)
    assert answer.ok and len(answer.inferences) == 3


def test_a_crashed_model_worker_is_restarted_and_its_task_retried(mesh):
    origin = mesh[2]
    agent = psutil.Process(origin.agent_pid)
    answers = []
    with client_for(origin) as client:
        threads = [threading.Thread(target=lambda: answers.append(client.submit(
            "Count from one to twenty in words.", 0, 0, timeout_s=240))) for _ in range(3)]
        for thread in threads:
            thread.start()
        wait_for_status(origin, origin.device, lambda s: s.busy)  # an inference is under way
        (worker,) = [c for c in agent.children() if "spawn_main" in " ".join(c.cmdline())]
        worker.kill()  # mid-inference: the task in hand must be retried, not lost
        for thread in threads:
            thread.join(240)
    assert len(answers) == 3
    assert all(a.ok and len(a.inferences) == 1 for a in answers), [a.error for a in answers]
    status = {s["device"]: s for s in read_statuses(origin.host, origin.port, 1.5)}[origin.device]
    assert status["worker_restarts"] == 1
