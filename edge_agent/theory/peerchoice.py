"""Choosing the k peers that answer a layer.

`uniform` is the paper's rule (k peers drawn uniformly among the live ones);
`least-loaded` picks the peers with the smallest expected wait, queue depth x
alpha as gossiped in their status, breaking ties at random. The simulator and
the agent both call choose_peers, so a policy measured in simulation is the
policy that runs on the boards.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Policy = Literal["uniform", "least-loaded"]
POLICIES: tuple[Policy, ...] = ("uniform", "least-loaded")


@dataclass(frozen=True)
class PeerLoad:
    """What the chooser knows about one live peer."""

    device: str
    queue: int = 0
    alpha: float = 1.0  # mean seconds per inference

    @property
    def expected_wait(self) -> float:
        # A queued task waits for the ones ahead of it plus the one in service.
        return (self.queue + 1) * self.alpha


def choose_peers(
    candidates: Sequence[PeerLoad],
    k: int,
    policy: Policy,
    rng: random.Random,
    exclude: Iterable[str] = (),
) -> list[str]:
    """Return up to k distinct device ids from candidates, never one in exclude."""
    if k < 0:
        raise ValueError("k must be >= 0")
    if policy not in POLICIES:
        raise ValueError(f"unknown peer policy {policy!r}; choose one of {', '.join(POLICIES)}")
    excluded = set(exclude)
    pool = [c for c in candidates if c.device not in excluded]
    if k == 0 or not pool:
        return []
    if policy == "uniform":
        return [c.device for c in rng.sample(pool, min(k, len(pool)))]
    # Shuffle first so that equal waits are ordered at random by the stable sort.
    shuffled = list(pool)
    rng.shuffle(shuffled)
    shuffled.sort(key=lambda c: c.expected_wait)
    return [c.device for c in shuffled[:k]]
