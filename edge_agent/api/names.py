"""Model names: what a request's `model` runs, and what /v1/models lists.

- `dmoa`: the board's own default M and k;
- `dmoa-m{M}k{k}`: an explicit M and k, at this board;
- `{model}@{device}`: one answer (M = 0) from that device's model;
  a bare `{model}` means the board's own device if it runs that model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.wire.messages import Status

DMOA = "dmoa"
EXPLICIT = re.compile(r"^dmoa-m(\d{1,2})k(\d{1,2})$")
MAX_LAYERS, MAX_PROPOSERS = 8, 64


@dataclass(frozen=True)
class Target:
    device: str
    layers: int | None
    """None: the device's own default (its status says which)."""
    proposers: int | None


class UnknownModel(ValueError):
    pass


def resolve(model: str, local: str, statuses: dict[str, Status]) -> Target:
    if model == DMOA:
        return Target(local, None, None)
    match = EXPLICIT.match(model)
    if match:
        layers, proposers = int(match.group(1)), int(match.group(2))
        if layers > MAX_LAYERS or proposers > MAX_PROPOSERS:
            raise UnknownModel(f"model {model!r}: M must be 0..{MAX_LAYERS} and k 0..{MAX_PROPOSERS}")
        return Target(local, layers, proposers)
    name, _, device = model.partition("@")
    if not device and local in statuses and statuses[local].model == name:
        device = local
    status = statuses.get(device)
    if status is None or status.model != name or not status.online:
        raise UnknownModel(f"model {model!r} does not exist here; GET /v1/models lists the models")
    return Target(device, 0, 0)


def listing(local: str, statuses: dict[str, Status]) -> list[dict[str, object]]:
    """`dmoa`, a few explicit shapes that the live mesh can run, and each live device's model."""
    live = sorted(d for d, s in statuses.items() if s.online)
    peers = max(len(live) - 1, 0)
    own = statuses.get(local)
    entries = [_entry(DMOA, local, {"layers": own.layers if own else None,
                                    "proposers": own.proposers if own else None})]
    for layers in (1, 2):
        for proposers in range(1, min(peers, 3) + 1):
            entries.append(_entry(f"dmoa-m{layers}k{proposers}", local,
                                  {"layers": layers, "proposers": proposers}))
    for device in live:
        entries.append(_entry(f"{statuses[device].model}@{device}", device,
                              {"layers": 0, "proposers": 0, "device": device}))
    return entries


def _entry(model_id: str, owner: str, detail: dict[str, object]) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner, "dmoa": detail}
