"""Stability figures from what the agents publish (Theorem 1 of arXiv 2412.21200).

rho = ((k+1)·M + 1) · lambda · alpha_max, stable while rho < 1. Inputs:
- lambda: each agent's `lam`, the prompt rate of its own user. Mesh-wide we
  use the mean over online devices reporting it (the theorem's per-user rate;
  equal to the sum over devices divided by their number);
- alpha_max: the largest `alpha` (mean inference seconds) among online devices;
- (M, k): the configurations in use, i.e. each device's default (its status)
  and those of the jobs seen recently. Mesh-wide rho is that of the heaviest one.
Per device, rho uses that device's user rate and its heaviest configuration:
the mesh's utilisation if every user behaved like this one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge_agent.protocol import Status
from edge_agent.stability import inferences_per_prompt

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
    online = sorted((s for s in statuses if s.online), key=lambda s: s.device)
    rates = [s.lam for s in online if s.lam is not None]
    lam_mean = sum(rates) / len(rates) if rates else None
    timed = [s for s in online if s.alpha is not None and s.alpha > 0]
    slowest = max(timed, key=lambda s: s.alpha or 0.0, default=None)
    alpha_max = slowest.alpha if slowest is not None else None

    in_use: dict[str, set[tuple[int, int]]] = {s.device: {(s.layers, s.proposers)} for s in online}
    for origin, layers, proposers in jobs:
        in_use.setdefault(origin, set()).add((layers, proposers))
    every = sorted(set().union(*in_use.values())) if in_use else []

    configs = []
    for layers, proposers in every:
        j = inferences_per_prompt(layers, proposers)
        configs.append(ConfigFigure(layers, proposers, j, _rho(j, lam_mean, alpha_max),
                                    1.0 / (j * alpha_max) if alpha_max else None))
    devices = []
    for s in online:
        j = max(inferences_per_prompt(m, k) for m, k in in_use[s.device])
        devices.append(DeviceFigure(s.device, j, s.lam, s.alpha, _rho(j, s.lam, alpha_max)))
    return Figures(lam_mean, alpha_max, slowest.device if slowest else "", configs, devices)


def _rho(inferences: int, lam: float | None, alpha_max: float | None) -> float | None:
    if lam is None or alpha_max is None:
        return None
    return inferences * lam * alpha_max
