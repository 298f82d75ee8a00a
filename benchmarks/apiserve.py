"""Shared by the API benchmarks: a local mesh with `edge-agent api` on its first device."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from edge_agent.ops import localmesh
from edge_agent.ops.localmesh import VirtualDevice, agent_settings

KEY = "benchmark-key-0123456789abcdef"
MODEL = "smollm2-135m-instruct-q4_1"


@contextlib.contextmanager
def served_mesh(count: int, base: str, engine: str, fake_seconds: float = 0.0,
                **settings: object) -> Iterator[tuple[str, list[VirtualDevice]]]:
    with tempfile.TemporaryDirectory(prefix="edge-api-bench-") as tmp:
        root = Path(tmp)
        extra = tuple(f"{k}={v}" for k, v in {"admission": "accept", **settings}.items())
        devices = localmesh.up(count, root / "mesh", agent_settings(MODEL, engine, fake_seconds, extra),
                               address_base=base, timeout_s=120)
        proc = None
        try:
            (root / "key").write_text(KEY)
            with socket.socket() as sock:
                sock.bind((devices[0].host, 0))
                port = sock.getsockname()[1]
            env = {**os.environ, "EDGE_AGENT_API_KEY_FILE": str(root / "key"),
                   "EDGE_AGENT_API_HOST": devices[0].host, "EDGE_AGENT_API_PORT": str(port)}
            proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "api", "--log-level", "WARNING",
                                     "--config", str(Path(devices[0].directory) / "agent.yaml")], env=env)
            url = f"http://{devices[0].host}:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            else:
                raise SystemExit("edge-agent api did not come up")
            yield url, devices
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=15)
            localmesh.down(root / "mesh")
