"""The lab's network: a namespace holding a bridge (the control node's side, 192.0.2.1) and one
namespace per board with a veth into it. The root namespace gets no address or route to them."""

from __future__ import annotations

from pathlib import Path

from .host import run
from .paths import BRIDGE, BRIDGE_NS, CONTROL_ADDRESS, board_ns


def exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def ensure_bridge() -> None:
    if not exists(BRIDGE_NS):
        run(["ip", "netns", "add", BRIDGE_NS])
    links = run(["ip", "-n", BRIDGE_NS, "-o", "link", "show"]).stdout
    if f": {BRIDGE}:" not in links:
        run(["ip", "-n", BRIDGE_NS, "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "-n", BRIDGE_NS, "addr", "add", f"{CONTROL_ADDRESS}/24", "dev", BRIDGE])
    run(["ip", "-n", BRIDGE_NS, "link", "set", "lo", "up"])
    run(["ip", "-n", BRIDGE_NS, "link", "set", BRIDGE, "up"])


def ensure_board(name: str, address: str) -> str:
    """The board's namespace, with eth0 at address on the bridge; returns the namespace name."""
    ns = board_ns(name)
    veth = f"v-{name}"[:15]
    if not exists(ns):
        run(["ip", "netns", "add", ns])
    links = run(["ip", "-n", BRIDGE_NS, "-o", "link", "show"]).stdout
    if f": {veth}@" not in links:
        run(["ip", "-n", BRIDGE_NS, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "-n", BRIDGE_NS, "link", "set", veth, "master", BRIDGE, "up"])
    if f"{address}/24" not in run(["ip", "-n", ns, "-o", "addr", "show"]).stdout:
        run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    return ns


def remove(ns: str) -> None:
    if exists(ns):
        run(["ip", "netns", "delete", ns], check=False)


def lab_namespaces() -> list[str]:
    found = [p.name for p in Path("/run/netns").glob(f"{BRIDGE_NS}-*")] if Path("/run/netns").is_dir() else []
    return sorted(found) + ([BRIDGE_NS] if exists(BRIDGE_NS) else [])
