"""Real local meshes for tests: one mosquitto and one agent per virtual device, each mesh on an
address block of its own, so meshes of different tests never meet."""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge_agent.client.status import observer_id
from edge_agent.client.submit import SubmitClient
from edge_agent.ops import localmesh
from edge_agent.ops.localmesh import VirtualDevice, agent_settings
from edge_agent.wire import topics
from edge_agent.wire.messages import Status, decode
from edge_agent.wire.mqtt import BrokerAddress, MeshClient

MODEL = "smollm2-135m-instruct-q4_1"
FIRST, LAST = 100, 254
"""Blocks 127.0.100 to 127.0.254; those below are left to benchmarks and to meshes started by hand."""
_start = FIRST + random.Random(os.getpid()).randrange(LAST - FIRST + 1)
_order = itertools.count()




def address_block() -> str:
    """A loopback block (127.0.N) that no other mesh of this test session uses, nor, as far as can
    be seen, one of another session on the machine (each session starts at its own place)."""
    for _ in range(LAST - FIRST + 1):
        block = f"127.0.{FIRST + (_start - FIRST + next(_order)) % (LAST - FIRST + 1)}"
        if not localmesh.block_taken(block):
            return block
    raise RuntimeError("no free loopback address block left for a test mesh")


def need_mosquitto() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed: run `make setup`")


@contextlib.contextmanager
def running_mesh(root: Path, count: int, engine: str = "llama", fake_seconds: float = 0.3,
                 admission: str = "accept", hub_nodes: int = 0, hub_base: str = "",
                 **settings: Any) -> Iterator[list[VirtualDevice]]:
    """A mesh of count devices, taken down however the test ends.

    Its agents run every job as asked (admission "accept"): admission control, which may lighten
    a job on a busy machine, has tests of its own; elsewhere the algorithm's exact shape is tested.
    With hub_nodes, the devices bridge to a RabbitMQ cluster of that many nodes on hub_base.
    """
    need_mosquitto()
    extra = tuple(f"{k}={v}" for k, v in {"admission": admission, **settings}.items())
    model = MODEL if engine == "llama" else "fake"
    hub = {"hub_nodes": hub_nodes, "hub_base": hub_base or address_block()} if hub_nodes else {}
    devices = localmesh.up(count, root, agent_settings(model, engine, fake_seconds, extra),
                           address_base=address_block(), timeout_s=180 if hub_nodes else 90, **hub)
    try:
        yield devices
    finally:
        localmesh.down(root)


def client_for(device: VirtualDevice) -> SubmitClient:
    return SubmitClient(BrokerAddress(device.host, device.port), device.device)


def wait_for_status(device: VirtualDevice, about: str, predicate: Callable[[Status], bool],
                    timeout_s: float = 30.0) -> Status:
    """The first status of device `about`, seen on device's broker, that satisfies predicate."""
    found: queue.Queue[Status] = queue.Queue()

    def on_status(message: mqtt.MQTTMessage) -> None:
        status = decode(message.payload, Status)
        if predicate(status):
            found.put(status)

    client = MeshClient(observer_id("wait-status"), BrokerAddress(device.host, device.port))
    client.route(topics.status(about), on_status)
    client.connect()
    try:
        return found.get(timeout=timeout_s)
    except queue.Empty:
        raise AssertionError(f"no status of {about} on {device.device}'s broker matched in {timeout_s:.0f} s") from None
    finally:
        client.close()
