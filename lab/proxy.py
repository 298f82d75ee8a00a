"""The boards' only way out: tinyproxy (Debian package) on the control node's loopback, reached
from the lab bridge at 192.0.2.1:3128 only. Two socat relays join the bridge namespace to the
proxy through a Unix socket, which belongs to no network namespace."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from . import procs
from .host import LabError, inside_netns
from .paths import BRIDGE_NS, CONTROL_ADDRESS, PROXY_PORT, STATE

LOOPBACK_HOST = "127.0.29.1"
DIR = STATE / "proxy"
CONF = """# tinyproxy for the dmoa-edge lab: reached only through the lab bridge's relay.
Port {port}
Listen {host}
Timeout 600
MaxClients 60
Allow 127.0.0.0/8
ConnectPort 443
ConnectPort 80
LogLevel Notice
ViaProxyName "dmoa-lab"
"""


def url() -> str:
    return f"http://{CONTROL_ADDRESS}:{PROXY_PORT}"


def _loopback() -> tuple[str, int]:
    """The proxy's loopback address: a free port, chosen once per lab."""
    port_file = DIR / "port"
    if not port_file.exists():
        with socket.socket() as probe:
            probe.bind((LOOPBACK_HOST, 0))
            port_file.write_text(str(probe.getsockname()[1]))
    return LOOPBACK_HOST, int(port_file.read_text())


def _parts() -> list[tuple[str, list[str], Path]]:
    sock = DIR / "proxy.sock"
    host, port = _loopback()
    return [
        ("tinyproxy", ["tinyproxy", "-d", "-c", str(DIR / "tinyproxy.conf")], DIR / "tinyproxy.log"),
        ("relay-root", ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600",
                        f"TCP:{host}:{port}"], DIR / "relay.log"),
        ("relay-bridge", ["ip", "netns", "exec", BRIDGE_NS, "socat",
                          f"TCP-LISTEN:{PROXY_PORT},bind={CONTROL_ADDRESS},reuseaddr,fork",
                          f"UNIX-CONNECT:{sock}"], DIR / "relay.log"),
    ]


def _answers(host: str, port: int, netns: str | None) -> bool:
    def attempt() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False
    if netns:
        with inside_netns(netns):
            return attempt()
    return attempt()


def start() -> None:
    DIR.mkdir(parents=True, exist_ok=True)
    host, port = _loopback()
    (DIR / "tinyproxy.conf").write_text(CONF.format(host=host, port=port))
    for name, argv, log in _parts():
        pid_file = DIR / f"{name}.pid"
        if not procs.read_pid(pid_file, argv[0] if name != "relay-bridge" else "socat"):
            procs.spawn(argv, log, pid_file)
    deadline = time.monotonic() + 15
    while not (_answers(host, port, None) and _answers(CONTROL_ADDRESS, PROXY_PORT, BRIDGE_NS)):
        if time.monotonic() > deadline:
            raise LabError(f"the lab's proxy did not start; see {DIR}/tinyproxy.log and {DIR}/relay.log")
        time.sleep(0.2)


def stop() -> None:
    if not DIR.is_dir():
        return
    for name, argv, _ in reversed(_parts()):
        pid_file = DIR / f"{name}.pid"
        procs.terminate(procs.read_pid(pid_file, argv[0] if name != "relay-bridge" else "socat"))
        pid_file.unlink(missing_ok=True)
    (DIR / "proxy.sock").unlink(missing_ok=True)
