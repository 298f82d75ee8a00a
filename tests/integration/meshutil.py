"""Helpers for tests that run real meshes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from edge_agent import localmesh
from edge_agent.client import SubmitClient
from edge_agent.commands.mesh import agent_settings
from edge_agent.localmesh import VirtualDevice
from edge_agent.mesh import BrokerAddress

MODEL = "smollm2-135m-instruct-q4_1"


@contextlib.contextmanager
def running_mesh(root: Path, count: int, base: str, engine: str = "llama", **settings) -> Iterator[list[VirtualDevice]]:
    """A mesh whose agents run every job as asked: admission control, which may lighten a
    job under load, has its own tests; here the algorithm's exact shape is under test."""
    settings = {"admission": "accept", **settings}
    extra = tuple(f"{k}={v}" for k, v in settings.items())
    devices = localmesh.up(count, root, agent_settings(MODEL, engine, 0.3, extra), address_base=base, timeout_s=90)
    try:
        yield devices
    finally:
        localmesh.down(root)


def client_for(device: VirtualDevice) -> SubmitClient:
    return SubmitClient(BrokerAddress(device.host, device.port), device.device)
