"""Every MQTT topic name the project uses, built in one place.

Lower-case ASCII, no leading slash, the protocol version in the namespace.
A board's bridge to peer X forwards exactly `to/X/#` and `from/<self>/#`
(see bridge_patterns), which keeps the mesh loop-free: no message is ever
forwarded twice, and the local-only topics below never leave the board.
"""

from __future__ import annotations

import re

NAMESPACE = "dmoa/v1"
DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_device(device: str) -> str:
    if not DEVICE_ID.match(device):
        raise ValueError(
            f"invalid device id {device!r}: use 1-63 lower-case letters, digits and '-', "
            "starting with a letter or digit"
        )
    return device


def task(device: str) -> str:
    return f"{NAMESPACE}/to/{check_device(device)}/task"


def result(device: str) -> str:
    return f"{NAMESPACE}/to/{check_device(device)}/result"


def submit(device: str) -> str:
    return f"{NAMESPACE}/to/{check_device(device)}/submit"


def answer(device: str, job_id: str) -> str:
    if not JOB_ID.match(job_id):
        raise ValueError(f"invalid job id {job_id!r}")
    return f"{NAMESPACE}/to/{check_device(device)}/answer/{job_id}"


def stream(device: str, job_id: str) -> str:
    """Chunks of a job's final answer, for the client's device (QoS 0, best effort)."""
    if not JOB_ID.match(job_id):
        raise ValueError(f"invalid job id {job_id!r}")
    return f"{NAMESPACE}/to/{check_device(device)}/stream/{job_id}"


def streams(device: str) -> str:
    return f"{NAMESPACE}/to/{check_device(device)}/stream/+"


def answers(device: str) -> str:
    return f"{NAMESPACE}/to/{check_device(device)}/answer/+"


def status(device: str) -> str:
    return f"{NAMESPACE}/from/{check_device(device)}/status"


def progress(device: str) -> str:
    return f"{NAMESPACE}/from/{check_device(device)}/progress"


ALL_STATUS = f"{NAMESPACE}/from/+/status"
ALL_PROGRESS = f"{NAMESPACE}/from/+/progress"

# Retained on the board's own broker only (no bridge pattern matches it): tells a
# client on the board which device id the local agent answers to.
LOCAL_IDENTITY = f"{NAMESPACE}/local/identity"


def device_of(topic: str) -> str | None:
    """The device segment of a `to/X/...` or `from/X/...` topic, else None."""
    parts = topic.split("/")
    if len(parts) >= 4 and "/".join(parts[:2]) == NAMESPACE and parts[2] in ("to", "from"):
        return parts[3]
    return None


def bridge_patterns(self_device: str, peer: str) -> list[str]:
    """The topic patterns a bridge from self_device's broker to peer's broker forwards (out)."""
    return [f"{NAMESPACE}/to/{check_device(peer)}/#", f"{NAMESPACE}/from/{check_device(self_device)}/#"]


# The hub topology: each board's broker has one bridge, to a clustered broker, instead of one per
# peer. A cluster speaking plain MQTT 3.1.1 (no bridge mode, no no-local) sends a subscriber its own
# publications back; two remapped topic lines keep that echo off the board's real topics.
HUB_SELF = f"{NAMESPACE}/self"
"""Remote tree where a board's work addressed to itself lands on the hub: subscribed by no one."""
HUB_ECHO = f"{NAMESPACE}/echo"
"""Local tree where the hub's echo of a board's own `from/` messages lands: read by no agent."""


def hub_routes(device: str) -> list[tuple[str, str, str, str]]:
    """The bridge to the hub, as (pattern, direction, local prefix, remote prefix) topic lines.

    Out: everything this board publishes as itself, and everything it addresses to others. Its
    work addressed to itself also matches `to/+/#`; the first line remaps it to `self/<device>/`
    on the hub, where nothing subscribes, so it never comes back as if a peer had sent it.
    In: what is addressed to this board, and what everyone publishes as itself (statuses and
    progress), as a full mesh delivers it; this board's own `from/` messages, echoed by the hub,
    are remapped by the last line to `echo/<device>/`.
    mosquitto remaps with the first prefixed line that matches, in either direction.
    """
    check_device(device)
    return [
        ("#", "out", f"{NAMESPACE}/to/{device}/", f"{HUB_SELF}/{device}/"),
        (f"{NAMESPACE}/to/+/#", "out", "", ""),
        (f"{NAMESPACE}/from/{device}/#", "out", "", ""),
        (f"{NAMESPACE}/to/{device}/#", "in", "", ""),
        (f"{NAMESPACE}/from/+/#", "in", "", ""),
        ("#", "in", f"{HUB_ECHO}/{device}/", f"{NAMESPACE}/from/{device}/"),
    ]
