"""Poisson arrivals at uniformly drawn devices, as in the paper's experiment.

Each of n users issues prompts at rate λ, so the mesh as a whole sees a Poisson
process of rate n·λ whose arrivals land on a device drawn uniformly. The schedule
depends only on the seed and the prompts, not on the configuration: every
configuration meets the same arrival times and origins, which makes their
latencies and queues directly comparable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class Arrival:
    index: int
    """The prompt's index in the prompts file."""
    slot: int
    """Which device, as a position in the sorted device list."""
    gap_s: float
    """Time since the previous arrival."""


def schedule(indices: list[int], devices: int, rate_per_user: float, seed: int) -> list[Arrival]:
    """One arrival per prompt, in the given order."""
    if devices < 1:
        raise ConfigError("the mesh has no online device")
    if not rate_per_user > 0:
        raise ConfigError("--rate must be a positive number of prompts per second per user")
    total = rate_per_user * devices
    rng = random.Random(seed)
    return [Arrival(index=i, slot=rng.randrange(devices), gap_s=rng.expovariate(total)) for i in indices]


def offsets(arrivals: list[Arrival]) -> list[float]:
    """Arrival times from the start of the run.

    Given a subset (the prompts still to run after an interruption), the subset
    keeps its own gaps: independent exponential gaps are still a Poisson process.
    """
    times, now = [], 0.0
    for arrival in arrivals:
        now += arrival.gap_s
        times.append(now)
    return times
