"""Starting `edge-agent api` for a device of a local mesh, as a user (or its unit) would."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from edge_agent.ops.localmesh import VirtualDevice

KEY = "test-key-" + "0123456789abcdef"


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_api(device: VirtualDevice, tmp: Path, **settings: object) -> Iterator[str]:
    """The API of device, configured by EDGE_AGENT_* overrides of its agent.yaml; yields its base URL."""
    key_file = tmp / f"api-key-{device.device}"
    key_file.write_text(KEY + "\n")
    port = free_port(device.host)
    env = {**os.environ, "EDGE_AGENT_API_KEY_FILE": str(key_file), "EDGE_AGENT_API_HOST": device.host,
           "EDGE_AGENT_API_PORT": str(port)}
    env.update({f"EDGE_AGENT_{k.upper()}": str(v) for k, v in settings.items()})
    log = (tmp / f"api-{device.device}-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "api", "--config",
                             str(Path(device.directory) / "agent.yaml")],
                            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{device.host}:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"edge-agent api exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a port that is not open yet: there is no event to wait for
    raise AssertionError(f"{url}/health not 200 within {timeout_s:.0f} s")


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
