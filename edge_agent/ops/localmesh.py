"""A mesh of virtual devices on one machine: one mosquitto and one agent per device,
each on its own loopback address, bridged exactly as on real boards.

`up` writes everything under one directory (configs, logs, stores, mesh.json
with the pids) and returns once every device sees every other; `down` stops
what mesh.json names, by pid, and waits until nothing is left.

With hub_nodes > 0 (topology `hub`), a RabbitMQ cluster of that many nodes runs
under DIR/hub and each device's broker bridges to it instead of to every peer
(edge_agent.ops.localhub).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from edge_agent.client.status import read_statuses
from edge_agent.errors import ConfigError, MeshError
from edge_agent.ops import brokerconf
from edge_agent.ops.procgroup import alive as _alive
from edge_agent.ops.procgroup import reap as _reap
from edge_agent.ops.procgroup import signal_group as _signal

MESH_FILE = "mesh.json"


@dataclass(frozen=True)
class VirtualDevice:
    device: str
    host: str
    port: int
    directory: str
    broker_pid: int = 0
    agent_pid: int = 0

    @property
    def broker(self) -> str:
        return f"{self.host}:{self.port}"


# Settings that suit several agents sharing one small machine.
LOCAL_DEFAULTS: dict[str, Any] = {
    "n_threads": 1, "max_tokens": 96, "n_ctx": 2048, "keepalive_s": 5, "status_interval_s": 1.0,
    "peer_stale_s": 6.0, "task_timeout_s": 60.0,
}


def block_taken(block: str, port: int = 1883) -> bool:
    """Whether something listens on a loopback block's (127.0.N) first broker address already:
    another mesh, of this process or not."""
    with socket.socket() as sock:
        try:
            sock.bind((f"{block}.1", port))
        except OSError:
            return True
    return False


def agent_settings(model: str, engine: str, fake_seconds: float, settings: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {**LOCAL_DEFAULTS, "engine": engine, "model": model, "fake_seconds": fake_seconds}
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip()] = yaml.safe_load(raw)
    return values


def plan(
    count: int, address_base: str = "127.0.1", port: int = 1883, prefix: str = "edge"
) -> list[tuple[str, str, int]]:
    if not 1 <= count <= 64:
        raise MeshError("a local mesh has 1 to 64 devices")
    if not address_base.startswith("127."):
        raise MeshError("a local mesh lives on loopback: the address base must start with 127.")
    return [(f"{prefix}-{i}", f"{address_base}.{i}", port) for i in range(1, count + 1)]


def up(
    count: int,
    directory: Path,
    agent_settings: dict[str, Any],
    address_base: str = "127.0.1",
    port: int = 1883,
    timeout_s: float = 120.0,
    hub_nodes: int = 0,
    hub_base: str = "127.0.2",
) -> list[VirtualDevice]:
    mosquitto = shutil.which("mosquitto") or _sbin("mosquitto")
    if mosquitto is None:
        raise MeshError("mosquitto is not installed (make setup installs it; or apt-get install mosquitto)")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / MESH_FILE).exists() and any(_alive(p) for d in load(directory)
                                                for p in (d.broker_pid, d.agent_pid)):
        raise MeshError(f"a mesh is already running in {directory}; run `edge-agent mesh down --dir {directory}`")
    layout = plan(count, address_base, port)
    devices: list[VirtualDevice] = []
    hub = None
    try:
        if hub_nodes:
            from edge_agent.ops import localhub as hubmesh
            hub = hubmesh.start_hub(directory, [d for d, _, _ in layout], hub_nodes, hub_base, timeout_s)
        for device, host, dev_port in layout:
            bridge = hub.bridge_for(device) if hub else None
            devices.append(_start_device(mosquitto, directory, device, host, dev_port, layout, agent_settings,
                                         hub=bridge))
            _save(directory, devices)
        wait_ready(devices, timeout_s, listen_s=_listen_s(agent_settings) if hub else 0.5)
    except BaseException:
        _stop_all(devices)
        if hub:
            hub.stop()
        raise
    return devices


def _listen_s(agent_settings: dict[str, Any]) -> float:
    """How long to listen for statuses on a hub's board: the hub does not hand a peer's status
    to a board as retained (docs/scale.md), so it comes with the peer's next periodic one."""
    return float(agent_settings.get("status_interval_s", 2.0)) + 0.5


def _start_device(mosquitto: str, root: Path, device: str, host: str, port: int,
                  layout: list[tuple[str, str, int]], agent_settings: dict[str, Any],
                  hub: brokerconf.HubBridge | None = None) -> VirtualDevice:
    home = root / device
    (home / "broker").mkdir(parents=True, exist_ok=True)
    spec = brokerconf.BrokerSpec(
        device=device,
        listeners=[brokerconf.Listener(host, port)],
        peers=[] if hub else [brokerconf.PeerBroker(d, h, p) for d, h, p in layout if d != device],
        persistence_dir=str(home / "broker"),
        log_file=str(home / "broker" / "mosquitto.log"),
        user=getpass.getuser(),
        hub=hub,
    )
    conf = home / "mosquitto.conf"
    conf.touch(mode=0o600)
    conf.write_text(brokerconf.render(spec))
    settings = {"device": device, "broker_host": host, "broker_port": port,
                "data_dir": str(home / "data"), **agent_settings}
    (home / "agent.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    broker = subprocess.Popen([mosquitto, "-c", str(home / "mosquitto.conf")], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=(home / "broker.err").open("ab"),
                              start_new_session=True)
    try:
        wait_port(host, port, broker, home / "broker" / "mosquitto.log")
    except MeshError:
        broker.kill()
        broker.wait(timeout=5)
        raise
    agent = start_agent(home)
    return VirtualDevice(device, host, port, str(home), broker.pid, agent.pid)


def start_agent(home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start (or restart) the agent of one virtual device from its rendered config; env adds to
    this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "--config", str(home / "agent.yaml")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=(home / "agent.log").open("ab"),
        start_new_session=True, env={**os.environ, **env} if env else None,
    )


def wait_ready(devices: list[VirtualDevice], timeout_s: float, listen_s: float = 0.5) -> None:
    """Return once each device's status, as seen on every broker, lists all the others."""
    deadline = time.monotonic() + timeout_s
    names = {d.device for d in devices}
    missing: dict[str, str] = {}
    while time.monotonic() < deadline:
        for dev in devices:
            if dev.agent_pid and not _alive(dev.agent_pid):
                raise MeshError(f"agent of {dev.device} exited; see {dev.directory}/agent.log")
        missing = {}
        for dev in devices:
            seen = {s["device"]: s for s in read_statuses(dev.host, dev.port, wait_s=listen_s) if s.get("online")}
            for name in names:
                peers = set(seen.get(name, {}).get("peers", []))
                if name not in seen:
                    missing[name] = f"not online on {dev.device}'s broker"
                elif peers != names - {name}:
                    missing[name] = f"sees {sorted(peers)}"
        if not missing:
            return
        time.sleep(0.5)
    detail = "; ".join(f"{k} {v}" for k, v in sorted(missing.items()))
    raise MeshError(f"mesh not ready after {timeout_s:.0f} s: {detail}")


def load(directory: Path) -> list[VirtualDevice]:
    path = directory / MESH_FILE
    if not path.is_file():
        raise MeshError(f"no local mesh in {directory} ({MESH_FILE} not found)")
    return [VirtualDevice(**d) for d in json.loads(path.read_text())["devices"]]


def _save(directory: Path, devices: list[VirtualDevice]) -> None:
    body = {"devices": [asdict(d) for d in devices]}
    tmp = directory / (MESH_FILE + ".tmp")
    tmp.write_text(json.dumps(body, indent=2))
    os.replace(tmp, directory / MESH_FILE)


def update_agent_pid(directory: Path, device: str, pid: int) -> None:
    devices = [VirtualDevice(**{**asdict(d), "agent_pid": pid}) if d.device == device else d
               for d in load(directory)]
    _save(directory, devices)


def status(directory: Path) -> list[dict[str, Any]]:
    rows = []
    for d in load(directory):
        rows.append({"device": d.device, "broker": d.broker, "directory": d.directory,
                     "broker_pid": d.broker_pid, "broker_running": _alive(d.broker_pid),
                     "agent_pid": d.agent_pid, "agent_running": _alive(d.agent_pid)})
    return rows


def down(directory: Path) -> list[int]:
    """Stop every process of the mesh, its hub's last; returns the device pids that had to be killed."""
    killed = _stop_all(load(directory))
    from edge_agent.ops import localhub as hubmesh
    hubmesh.stop_hub(directory)
    return killed


def _stop_all(devices: list[VirtualDevice]) -> list[int]:
    killed: list[int] = []
    # Agents first, so they can publish their offline status through their brokers.
    for pids in ([d.agent_pid for d in devices], [d.broker_pid for d in devices]):
        live = [p for p in pids if p and _alive(p)]
        for pid in live:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in live) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in live:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
                killed.append(pid)
        for pid in live:
            _reap(pid)
    return killed


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-500:] if log.exists() else ""
            raise MeshError(f"mosquitto on {host}:{port} exited at start: {tail.strip() or 'no log'}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise MeshError(f"mosquitto on {host}:{port} did not open its port in {timeout_s:.0f} s")


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.exists() else None
