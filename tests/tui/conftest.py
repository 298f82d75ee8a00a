"""Fixtures for the TUI tests: real local meshes (fake engine) and deterministic data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.meshes import running_mesh

from edge_agent.ops.localmesh import VirtualDevice
from edge_agent.wire.messages import Answer, Inference, Progress, Status

FROZEN = 1_700_000_000.0
"""The wall clock of every deterministic test."""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[VirtualDevice]]:
    """Three devices; each inference takes 0.6 s. Admission control acts as on a board."""
    with running_mesh(tmp_path_factory.mktemp("mesh"), 3, engine="fake", fake_seconds=0.6,
                      admission="degrade") as devices:
        yield devices


@pytest.fixture
def small_mesh(tmp_path: Path) -> Iterator[list[VirtualDevice]]:
    """Two devices, for tests that stop one of them."""
    with running_mesh(tmp_path / "mesh", 2, engine="fake", fake_seconds=0.2, admission="degrade") as devices:
        yield devices


async def wait_for(condition: Callable[[], Any], timeout_s: float, step_s: float = 0.1) -> Any:
    """Poll condition on the app's loop until it is truthy; its value, or AssertionError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(step_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


def status(device: str, queue: int = 0, **fields: Any) -> Status:
    base: dict[str, Any] = {
        "device": device, "online": True, "ts": FROZEN - 1, "version": "0.1.0",
        "model": "smollm2-135m-instruct-q4_1", "n_ctx": 2048, "queue": queue, "alpha": 2.0, "tokens_per_s": 11.5,
        "lam": 0.02, "rho": 0.16, "layers": 1, "proposers": 2, "policy": "uniform", "cpu": 35.0, "memory": 41.0,
        "temperature": 52.3, "peers": [],
    }
    base.update(fields)
    return Status(**base)


def progress(job_id: str, event: str, origin: str = "edge-1", layers: int = 1, proposers: int = 2,
             **fields: Any) -> Progress:
    return Progress(job_id=job_id, origin=origin, event=event, layers=layers, proposers=proposers,
                    ts=FROZEN, **fields)


class FakeSubmitter:
    """Answers at once, like an agent would, without a mesh."""

    device = "edge-1"

    def __init__(self) -> None:
        self.prompts: list[tuple[str, int | None, int | None]] = []

    def submit(self, prompt: str, layers: int | None = None, proposers: int | None = None, policy: str = "",
               job_id: str | None = None, timeout_s: float = 300.0) -> Answer:
        self.prompts.append((prompt, layers, proposers))
        inferences = [Inference(layer=1, role="propose", device=f"edge-{i}", seconds=2.0, prompt_tokens=20,
                                completion_tokens=40) for i in (1, 2, 3)]
        m, k = (1 if layers is None else layers), (2 if proposers is None else proposers)
        return Answer(job_id=job_id or "job", origin="edge-1", ok=True, layers=m, proposers=k,
                      answer=f"Mixture-of-Agents answer to: {prompt}", latency_s=6.4, inferences=inferences)

    def close(self) -> None:
        pass
