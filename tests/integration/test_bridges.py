"""The bridge mesh on real brokers: addressed messages reach their addressee once, statuses
reach everyone once, local topics stay local."""

from __future__ import annotations

import threading
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.meshes import running_mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("bridges"), 3, engine="fake") as devices:
        yield devices


PROBES = ("dmoa/v1/to/+/probe", "dmoa/v1/from/+/probe", "dmoa/v1/local/probe")


def listener(device, seen, lock):
    """A client that counts what reaches device's broker; returned once its subscriptions hold."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"spy-{device.device}")
    subscribed = threading.Semaphore(0)

    def on_message(c, u, message):
        with lock:
            seen[(device.device, message.topic, message.payload)] += 1
            lock.notify_all()

    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.release()
    client.connect(device.host, device.port)
    client.loop_start()
    for topic_filter in PROBES:
        client.subscribe(topic_filter, 1)
    for _ in PROBES:
        assert subscribed.acquire(timeout=10), f"the spy on {device.device} subscribed"
    return client


def test_each_message_crosses_one_bridge_at_most_once(mesh):
    seen: Counter = Counter()
    lock = threading.Condition()
    spies = [listener(d, seen, lock) for d in mesh]
    sender = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="probe-sender")
    sender.connect(mesh[0].host, mesh[0].port)
    sender.loop_start()
    topics = ("dmoa/v1/to/edge-3/probe", "dmoa/v1/from/edge-1/probe", "dmoa/v1/local/probe")
    for payload in (b"p", b"end"):  # a copy of a probe would travel the same path ahead of its "end"
        for topic in topics:
            sender.publish(topic, payload, qos=1).wait_for_publish(5)
    with lock:
        assert lock.wait_for(lambda: sum(n for (_, _, p), n in seen.items() if p == b"end") >= 6, 20)
    sender.loop_stop()
    for spy in spies:
        spy.loop_stop()
    counts = {(d, t): n for (d, t, p), n in seen.items() if p == b"p"}
    assert counts == {
        ("edge-1", "dmoa/v1/to/edge-3/probe"): 1,   # published there
        ("edge-3", "dmoa/v1/to/edge-3/probe"): 1,   # crossed one bridge, to its addressee only
        ("edge-1", "dmoa/v1/from/edge-1/probe"): 1,
        ("edge-2", "dmoa/v1/from/edge-1/probe"): 1,  # everyone hears edge-1, once
        ("edge-3", "dmoa/v1/from/edge-1/probe"): 1,
        ("edge-1", "dmoa/v1/local/probe"): 1,        # local topics never leave the board
    }
