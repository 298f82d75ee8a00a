"""Hostile and poisonous messages on a real mesh: a message a handler fails on is dead-lettered and
never comes back, a storage failure leaves its message with the broker, and no board can answer a
task or a job in another board's name."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.meshes import client_for, running_mesh, wait_for_status

from edge_agent.client.status import read_statuses
from edge_agent.config import load_config
from edge_agent.errors import StorageError
from edge_agent.node.agent import Agent
from edge_agent.ops.localmesh import VirtualDevice
from edge_agent.wire import topics
from edge_agent.wire.messages import Answer, Progress, Result, Submit

pytestmark = pytest.mark.faults


class Tap:
    """A plain MQTT client on one broker: publishes as a hostile board's bridge would, and shows
    that what it published reached the broker by reading it back."""

    def __init__(self, device: VirtualDevice, watch: str) -> None:
        self.seen: list[bytes] = []
        self._got = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"tap-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(device.host, device.port)
        self.client.loop_start()
        self.client.subscribe(watch, 1)
        assert self._subscribed.wait(10), "the tap subscribed"

    def _on_message(self, client, userdata, message) -> None:
        with self._got:
            self.seen.append(bytes(message.payload))
            self._got.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def wait_for(self, payload: bytes, timeout_s: float = 10) -> bool:
        with self._got:
            return self._got.wait_for(lambda: payload in self.seen, timeout_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def in_process_agent(device: VirtualDevice, calls: list[str], fault: dict[str, Exception]) -> Agent:
    """The device's agent, run in this process so that a fault can be planted in a handler:
    accepting a submit whose prompt is a key of fault raises that error."""
    started = time.time()
    agent = Agent(load_config(Path(device.directory) / "agent.yaml"))
    accept = agent.coordinator.accept

    def faulty_accept(submit: Submit) -> None:
        calls.append(submit.job_id)
        if submit.prompt in fault:
            raise fault[submit.prompt]
        accept(submit)

    agent.coordinator.accept = faulty_accept  # type: ignore[method-assign]
    agent.start()
    wait_for_status(device, device.device, lambda s: s.online and s.ts >= started)
    return agent


def kill_agent(device: VirtualDevice) -> None:
    os.killpg(device.agent_pid, signal.SIGKILL)
    gone, alive = psutil.wait_procs([psutil.Process(device.agent_pid)], timeout=10)
    assert not alive, "the mesh's own agent is gone"


def test_a_message_that_makes_a_handler_raise_is_dead_lettered_and_seen_at_most_once(tmp_path, reliability):
    with running_mesh(tmp_path, 1, engine="fake", fake_seconds=0.05) as (device,):
        kill_agent(device)
        calls: list[str] = []
        poison = Submit(job_id="poison-1", prompt="poison", layers=0, proposers=0, reply_to=device.device)
        agent = in_process_agent(device, calls, {"poison": RuntimeError("a bug this message trips")})
        try:
            tap = Tap(device, topics.submit(device.device))
            tap.publish(topics.submit(device.device), poison.encode())
            assert tap.wait_for(poison.encode()), "the poison reached the broker"
            tap.close()
            with client_for(device) as client:
                assert client.submit("after the poison", 0, 0, timeout_s=60).ok, "the agent serves on"
            assert calls.count("poison-1") == 1 and agent.dead_letters == 1 and not agent.stopped
        finally:
            agent.stop()
        # A restart resumes the same broker session: an unacknowledged poison would be handed
        # back now, before anything published after the restart.
        agent = in_process_agent(device, calls, {"poison": RuntimeError("a bug this message trips")})
        try:
            with client_for(device) as client:
                assert client.submit("after the restart", 0, 0, timeout_s=60).ok
            assert calls.count("poison-1") == 1, "the poison did not come back"
            (letter,) = agent.store.dead_letters()
            assert letter.topic == topics.submit(device.device) and letter.payload == poison.encode()
            assert letter.reason == "RuntimeError: a bug this message trips"
            assert not agent.stopped
        finally:
            agent.stop()
    reliability(scenario="a message that makes a handler raise, then a restart", trials=1, recover_s=None,
                figure="handled once, dead-lettered, not redelivered; the agent serves on")


def test_a_storage_failure_stops_the_agent_and_the_broker_hands_the_message_back(tmp_path):
    with running_mesh(tmp_path, 1, engine="fake", fake_seconds=0.05) as (device,):
        kill_agent(device)
        calls: list[str] = []
        fault = {"disk full": StorageError("the store failed: database or disk is full")}
        agent = in_process_agent(device, calls, fault)
        answers: list[Answer] = []
        with client_for(device) as client:
            asking = threading.Thread(target=lambda: answers.append(
                client.submit("disk full", 0, 0, job_id="kept-1", timeout_s=90)))
            asking.start()
            try:
                assert agent.wait_stopped(30), "a storage failure stops the agent"
            finally:
                agent.stop()
            assert calls == ["kept-1"]
            fault.clear()  # the disk has room again
            agent = in_process_agent(device, calls, fault)
            try:
                asking.join(90)
            finally:
                agent.stop()
        assert calls == ["kept-1", "kept-1"], "the broker handed the unacknowledged submit back"
        assert [a.job_id for a in answers] == ["kept-1"] and answers[0].ok


def test_no_board_can_answer_a_task_or_a_job_in_another_boards_name(tmp_path, reliability):
    with running_mesh(tmp_path, 3, engine="fake", fake_seconds=1.5) as mesh:
        origin = mesh[0]
        rejected_before = {s["device"]: s["rejected"] for s in read_statuses(origin.host, origin.port, 1.5)}
        tap = Tap(origin, f"{topics.NAMESPACE}/to/{origin.device}/#")
        forged: list[bytes] = []

        def forge(p: Progress) -> None:
            # The moment layer 1 is out: answer a peer's task, and the whole job, as a hostile board.
            if p.event == "dispatched" and p.layer == 1 and not forged:
                peer = p.detail.split()[1]
                result = Result(task_id=f"{p.job_id}/1/{peer}/0", job_id=p.job_id, device=peer, layer=1,
                                role="propose", ok=True, text="FORGED", seconds=99.0)
                answer = Answer(job_id=p.job_id, origin=origin.device, ok=True, answer="FORGED")
                forged.extend([result.encode(), answer.encode()])
                tap.publish(topics.result(origin.device), result.encode())
                tap.publish(topics.answer(origin.device, p.job_id), answer.encode())

        try:
            with client_for(origin) as client:
                answer = client.submit("Who wrote this?", 1, 2, timeout_s=90, on_progress=forge)
            assert len(forged) == 2 and all(tap.wait_for(f) for f in forged), "both forgeries reached the broker"
        finally:
            tap.close()
        assert answer.ok and answer.answer != "FORGED", "the client took the origin's answer only"
        assert len(answer.inferences) == 4 and 99.0 not in [i.seconds for i in answer.inferences]
        db = sqlite3.connect(Path(origin.directory) / "data" / "agent.db")
        assert db.execute("SELECT COUNT(*) FROM dispatches WHERE text='FORGED'").fetchone() == (0,)
        after = {s["device"]: s["rejected"] for s in read_statuses(origin.host, origin.port, 3.0)}
        assert after[origin.device] == rejected_before[origin.device] + 1, "the forged result was counted"
    reliability(scenario="a board forges a peer's result and the origin's answer", trials=1, recover_s=None,
                figure="both reached the broker; both ignored, the forged result counted")

