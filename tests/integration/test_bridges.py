"""The bridge mesh on real brokers: addressed messages reach their addressee once, statuses
reach everyone once, local topics stay local."""

from __future__ import annotations

import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from meshutil import running_mesh
from paho.mqtt.enums import CallbackAPIVersion


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("bridges"), 3, "127.0.55", engine="fake") as devices:
        yield devices


PROBES = ("dmoa/v1/to/+/probe", "dmoa/v1/from/+/probe", "dmoa/v1/local/probe")


def listener(device, seen, lock):
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"spy-{device.device}")

    def on_message(c, u, message):
        with lock:
            seen[(device.device, message.topic, message.payload)] += 1

    client.on_message = on_message
    client.connect(device.host, device.port)
    for topic_filter in PROBES:
        client.subscribe(topic_filter, 1)
    client.loop_start()
    return client


def test_each_message_crosses_one_bridge_at_most_once(mesh):
    seen: Counter = Counter()
    lock = threading.Lock()
    spies = [listener(d, seen, lock) for d in mesh]
    time.sleep(1.0)
    sender = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="probe-sender")
    sender.connect(mesh[0].host, mesh[0].port)
    sender.loop_start()
    for topic in ("dmoa/v1/to/edge-3/probe", "dmoa/v1/from/edge-1/probe", "dmoa/v1/local/probe"):
        sender.publish(topic, b"p", qos=1).wait_for_publish(5)
    time.sleep(2.0)
    sender.loop_stop()
    for spy in spies:
        spy.loop_stop()
    counts = {(d, t): n for (d, t, _), n in seen.items()}
    assert counts == {
        ("edge-1", "dmoa/v1/to/edge-3/probe"): 1,   # published there
        ("edge-3", "dmoa/v1/to/edge-3/probe"): 1,   # crossed one bridge, to its addressee only
        ("edge-1", "dmoa/v1/from/edge-1/probe"): 1,
        ("edge-2", "dmoa/v1/from/edge-1/probe"): 1,  # everyone hears edge-1, once
        ("edge-3", "dmoa/v1/from/edge-1/probe"): 1,
        ("edge-1", "dmoa/v1/local/probe"): 1,        # local topics never leave the board
    }
