"""Helpers for tests that run real meshes."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt

from edge_agent import localmesh, topics
from edge_agent.client import SubmitClient
from edge_agent.commands.mesh import agent_settings
from edge_agent.localmesh import VirtualDevice
from edge_agent.mesh import BrokerAddress, MeshClient
from edge_agent.protocol import Status, decode
from edge_agent.statusread import observer_id

MODEL = "smollm2-135m-instruct-q4_1"


@contextlib.contextmanager
def running_mesh(root: Path, count: int, base: str, engine: str = "llama", hub_nodes: int = 0,
                 hub_base: str = "", **settings) -> Iterator[list[VirtualDevice]]:
    """A mesh whose agents run every job as asked: admission control, which may lighten a
    job under load, has its own tests; here the algorithm's exact shape is under test.
    With hub_nodes, the devices bridge to a RabbitMQ cluster of that many nodes on hub_base."""
    settings = {"admission": "accept", **settings}
    extra = tuple(f"{k}={v}" for k, v in settings.items())
    devices = localmesh.up(count, root, agent_settings(MODEL, engine, 0.3, extra), address_base=base,
                           timeout_s=180 if hub_nodes else 90, hub_nodes=hub_nodes, hub_base=hub_base)
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
