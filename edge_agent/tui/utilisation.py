"""Stability figures from what the agents publish (Theorem 1 of arXiv 2412.21200).

rho = ((k+1)·M + 1) · lambda · alpha_max, stable while rho < 1. Inputs:
- lambda: each agent's `lam`, the prompt rate of its own user. Mesh-wide we
  use the mean over online devices reporting it (the theorem's per-user rate;
  equal to the sum over devices divided by their number);
- alpha_max: the largest `alpha` (mean inference seconds) among online devices;
- (M, k): the configurations in use, i.e. each device's default (its status)
  and those of the jobs seen recently. Mesh-wide rho is that of the heaviest one.
Per device, rho uses that device's user rate, its heaviest configuration and
alpha_max: the mesh's utilisation if every user behaved like this one. (The
agents' own `rho` uses their own alpha instead; the panel shows the theorem's.)
lambda and alpha_max come from edge_agent.theory.stability.mesh_load, the same
figures admission control uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge_agent.theory.stability import inferences_per_prompt, mesh_load, utilisation
from edge_agent.wire.messages import Status

WARN = 0.8
"""rho at which the panel warns: queues grow fast as rho nears 1."""
BUSY = 0.5


def level(rho: float | None) -> str:
    """ok, busy, warn or unstable (rho >= 1); unknown when not measurable yet."""
    if rho is None:
        return "unknown"
    if rho >= 1.0:
        return "unstable"
    if rho >= WARN:
        return "warn"
    return "busy" if rho >= BUSY else "ok"


@dataclass(frozen=True)
class ConfigFigure:
    layers: int
    proposers: int
    inferences: int
    rho: float | None
    lambda_star: float | None
    """Largest stable prompt rate per user, 1 / (J · alpha_max)."""


@dataclass(frozen=True)
class DeviceFigure:
    device: str
    inferences: int
    lam: float | None
    alpha: float | None
    rho: float | None


@dataclass(frozen=True)
class Figures:
    lam_mean: float | None
    alpha_max: float | None
    slowest: str
    configs: list[ConfigFigure]
    devices: list[DeviceFigure]

    @property
    def rho(self) -> float | None:
        values = [c.rho for c in self.configs if c.rho is not None]
        return max(values) if values else None


def figures(statuses: Iterable[Status], jobs: Iterable[tuple[str, int, int]]) -> Figures:
    """statuses: the latest of each device; jobs: (origin, M, k) of the jobs seen."""
    statuses = list(statuses)
    online = sorted((s for s in statuses if s.online), key=lambda s: s.device)
    load = mesh_load(statuses)
    lam_mean = load.lam if load is not None else None
    alpha_max = load.alpha_max if load is not None else None

    in_use: dict[str, set[tuple[int, int]]] = {s.device: {(s.layers, s.proposers)} for s in online}
    for origin, layers, proposers in jobs:
        in_use.setdefault(origin, set()).add((layers, proposers))
    every = sorted(set().union(*in_use.values())) if in_use else []

    configs = [
        ConfigFigure(m, k, inferences_per_prompt(m, k), load.rho(m, k) if load else None,
                     1.0 / (inferences_per_prompt(m, k) * load.alpha_max) if load else None)
        for m, k in every
    ]
    devices = []
    for s in online:
        heaviest = max(in_use[s.device], key=lambda c: inferences_per_prompt(*c))
        rho = utilisation(*heaviest, s.lam, alpha_max) if s.lam is not None and alpha_max else None
        devices.append(DeviceFigure(s.device, inferences_per_prompt(*heaviest), s.lam, s.alpha, rho))
    return Figures(lam_mean, alpha_max, load.slowest if load else "", configs, devices)
