"""Where the lab keeps things. The image and the keys are cached across checkouts; the boards'
overlays, consoles and pid files belong to the running lab; the inventory belongs to the checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Two labs on one host (a user's `make lab` and the tests') differ by name: namespaces, cgroups,
# state. Their boards have the same addresses, each behind its own bridge namespace.
NAME = os.environ.get("LAB_NAME", "dmoa-lab")
# Built once per package list and shared by every checkout on this machine.
CACHE = Path(os.environ.get("LAB_CACHE_DIR", "/var/cache/dmoa-edge/lab"))
# The running lab: one folder per board (overlay, console log, supervisor pid), the proxy.
STATE = Path(os.environ.get("LAB_STATE_DIR", f"/var/tmp/{NAME}"))
# What a user of the checkout needs: the inventory and the SSH settings (git-ignored).
OUT = Path(os.environ.get("LAB_OUT_DIR", REPO / ".lab"))

BRIDGE_NS = NAME
BRIDGE = "dmoa-br0"
# TEST-NET-2 (RFC 5737): documentation addresses, routed nowhere (TEST-NET-1, 192.0.2.0/24, is
# often taken by container hosts for their own network).
NETWORK = "198.51.100"
CONTROL_ADDRESS = f"{NETWORK}.1"
PROXY_PORT = 3128
CGROUP = NAME
USER = "lab"


def board_name(index: int) -> str:
    return f"board-{index}"


def board_address(index: int) -> str:
    return f"{NETWORK}.{10 + index}"


def board_ns(name: str) -> str:
    return f"{BRIDGE_NS}-{name}"
