"""Queue stability of DMoA and a planner for choosing (M, k).

Model (Mitra, Kaswan, Ulukus, "Distributed Mixture-of-Agents for Edge
Inference with Large Language Models", arXiv 2412.21200): n devices, each with
one user submitting prompts as a Poisson process of rate λ, each device one
FCFS queue served by its model with mean inference time α_i. A prompt with M
layers and k proposers per layer costs J = (k+1)·M + 1 inferences: k+1 per
layer, plus the origin's final aggregation.

Theorem 1: with peers drawn uniformly at random, every device receives
inferences at rate J·λ (its own user's M+1, plus k·M·λ from the other users
spread over n-1 devices), so all queues are stable when
    J · λ · α_max < 1,   i.e.   λ < λ* = 1 / (J · α_max).
Remark 1 (heterogeneous boards): the bound is set by the slowest board; the
utilisation of board i is J·λ·α_i and the mesh-wide ρ is the largest of these.

Predicted latency (used by `plan`, an estimate, not part of the theorem): each
device is treated as an M/M/1 queue fed at rate J·λ, so its sojourn time is
exponential with mean T_i = α_i / (1 - J·λ·α_i). A layer ends when the
origin's and its k peers' sojourns have all ended; these are treated as
independent, the peers as k draws from the other devices. The final
aggregation adds the origin's T. The result is averaged over origins:
    latency = mean_o [ M · E[max(X_o, Y_1..Y_k)] + T_o ],
which for identical boards is (M·H_{k+1} + 1)·α/(1-ρ), H the harmonic number.
It ignores that a layer's tasks arrive together (fork-join correlation) and
assumes exponential service, so it leans pessimistic for the near-constant
inference times of a fixed-length generation.

Live figures (what the agents publish, see docs/stability.md): `mesh_load`
turns the devices' statuses into the theorem's inputs, the mean prompt rate
per user λ̄ over online devices and α_max over online devices with a known α;
`MeshLoad.rho(M, k)` is then J·λ̄·α_max, and `richest_fit` is the admission
controller's fallback configuration. Standard library only: the agent imports
this module.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from edge_agent.errors import ConfigError

_SIMPSON_INTERVALS = 800  # even; the integrand is smooth and decays exponentially


def inferences_per_prompt(layers: int, proposers: int) -> int:
    """J = (k+1)·M + 1; M = 0 is one inference at the origin."""
    if layers < 0 or proposers < 0:
        raise ConfigError("layers and proposers must be >= 0")
    return (proposers + 1) * layers + 1


def _check_alphas(alphas: Sequence[float]) -> None:
    if not alphas:
        raise ConfigError("need at least one device alpha")
    if any(not math.isfinite(a) or a <= 0 for a in alphas):
        raise ConfigError("every alpha must be a positive number of seconds")


def lambda_star(layers: int, proposers: int, alphas: Sequence[float]) -> float:
    """Theorem 1's largest stable prompt rate per user, 1 / (J · α_max)."""
    _check_alphas(alphas)
    return 1.0 / (inferences_per_prompt(layers, proposers) * max(alphas))


def rho(layers: int, proposers: int, rate: float, alphas: Sequence[float]) -> float:
    """Mesh-wide utilisation J · λ · α_max; the queues are stable iff it is < 1."""
    return rate / lambda_star(layers, proposers, alphas)


def utilisation(layers: int, proposers: int, lam: float, alpha_max: float) -> float:
    """ρ = ((k+1)·M + 1)·λ·α_max from scalars; the queues are stable when ρ < 1."""
    return inferences_per_prompt(layers, proposers) * lam * alpha_max


def device_rho(arrival_rate: float, alpha: float) -> float:
    """Utilisation of one device from measurements: inferences arriving per second × α."""
    if arrival_rate < 0 or alpha <= 0:
        raise ConfigError("arrival rate must be >= 0 and alpha > 0")
    return arrival_rate * alpha


def _expected_layer_time(own: float, others: Counter[float], proposers: int) -> float:
    """E[max(X_o, Y_1..Y_k)]: X_o ~ Exp(own), Y_i drawn from the mixture of the others."""
    if proposers == 0 or not others:
        return own
    weight = sum(others.values())
    horizon = max(own, *others) * (math.log(proposers + 1) + 25.0)
    step = horizon / _SIMPSON_INTERVALS
    total = 0.0
    for i in range(_SIMPSON_INTERVALS + 1):
        t = i * step
        survive = sum(count * math.exp(-t / mean) for mean, count in others.items()) / weight
        value = 1.0 - (1.0 - math.exp(-t / own)) * (1.0 - survive) ** proposers
        total += value * (1 if i in (0, _SIMPSON_INTERVALS) else 4 if i % 2 else 2)
    return total * step / 3.0


def predicted_latency(layers: int, proposers: int, rate: float, alphas: Sequence[float]) -> float:
    """Mean prompt latency under the model in the module docstring; inf if unstable."""
    if rho(layers, proposers, rate, alphas) >= 1.0:
        return math.inf
    load = inferences_per_prompt(layers, proposers) * rate
    sojourns = Counter(a / (1.0 - load * a) for a in alphas)
    total = 0.0
    for own, count in sojourns.items():
        others = sojourns.copy()
        others[own] -= 1
        others = +others  # drop the zero count
        total += count * (layers * _expected_layer_time(own, others, proposers) + own)
    return total / len(alphas)


@dataclass(frozen=True)
class PlanRow:
    """One (M, k) configuration evaluated at a target rate."""

    layers: int
    proposers: int
    inferences: int
    lambda_star: float
    rho: float
    latency: float  # predicted mean seconds per prompt; inf when unstable
    stable: bool

    def as_dict(self) -> dict[str, object]:
        row: dict[str, object] = dict(self.__dict__)
        row["latency"] = self.latency if math.isfinite(self.latency) else None
        return row


def default_configs(devices: int, max_layers: int = 3) -> list[tuple[int, int]]:
    """(0, 0) and every (M, k) with 1 <= M <= max_layers, 0 <= k <= n-1."""
    return [(0, 0)] + [(m, k) for m in range(1, max_layers + 1) for k in range(devices)]


def plan(alphas: Sequence[float], rate: float, configs: Iterable[tuple[int, int]] | None = None) -> list[PlanRow]:
    """Evaluate every configuration at `rate` prompts/s per user."""
    _check_alphas(alphas)
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError("rate must be a positive number of prompts per second")
    rows = []
    for layers, proposers in configs if configs is not None else default_configs(len(alphas)):
        if proposers > len(alphas) - 1:
            raise ConfigError(f"k={proposers} needs at least {proposers + 1} devices")
        load = rho(layers, proposers, rate, alphas)
        rows.append(
            PlanRow(
                layers=layers,
                proposers=proposers,
                inferences=inferences_per_prompt(layers, proposers),
                lambda_star=lambda_star(layers, proposers, alphas),
                rho=load,
                latency=predicted_latency(layers, proposers, rate, alphas),
                stable=load < 1.0,
            )
        )
    return rows


def recommend(rows: Iterable[PlanRow]) -> PlanRow | None:
    """The richest stable configuration: most inferences, then lowest predicted latency."""
    stable = [r for r in rows if r.stable]
    return max(stable, key=lambda r: (r.inferences, -r.latency), default=None)


def parse_alphas(values: Iterable[str]) -> list[float]:
    """Alphas from repeated options and/or comma-separated lists: ("1,1", "2") -> [1, 1, 2]."""
    alphas = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                alphas.append(float(part))
            except ValueError:
                raise ConfigError(f"alpha {part!r} is not a number of seconds") from None
    _check_alphas(alphas)
    return alphas


class Reported(Protocol):
    """What mesh_load reads from a device's status (edge_agent.wire.messages.Status has it)."""

    @property
    def device(self) -> str: ...
    @property
    def online(self) -> bool: ...
    @property
    def alpha(self) -> float | None: ...
    @property
    def lam(self) -> float | None: ...


@dataclass(frozen=True)
class MeshLoad:
    """Theorem 1's inputs as measured by the live devices."""

    devices: int  # online devices
    lam: float  # mean prompts/s per user over the online devices that report λ
    alpha_max: float  # largest α over the online devices that report one
    slowest: str  # the device with α_max

    def rho(self, layers: int, proposers: int) -> float:
        """Mesh-wide ρ if every user's prompts ran with (M, k)."""
        return utilisation(layers, proposers, self.lam, self.alpha_max)


def mesh_load(statuses: Iterable[Reported]) -> MeshLoad | None:
    """λ̄ and α_max over the online devices; None until some device reports α and λ.

    λ̄ is the mean of the users' rates, devices whose users are idle included:
    Theorem 1 has one rate per user, and the total demand J·Σλ_i spread over the
    n boards is J·λ̄ per board. It understates the load of a board whose own
    user is much busier than the others' (the origin keeps M+1 of its J
    inferences), which the admission threshold below 1 leaves room for.
    """
    online = [s for s in statuses if s.online]
    rates = [s.lam for s in online if s.lam is not None and math.isfinite(s.lam) and s.lam >= 0]
    timed = [s for s in online if s.alpha is not None and math.isfinite(s.alpha) and s.alpha > 0]
    if not rates or not timed:
        return None
    slowest = max(timed, key=lambda s: s.alpha or 0.0)
    return MeshLoad(len(online), sum(rates) / len(rates), float(slowest.alpha or 0.0), slowest.device)


def mesh_rho(statuses: Iterable[Reported], layers: int, proposers: int) -> float | None:
    """Mesh-wide ρ = ((k+1)·M + 1)·λ̄·α_max from the devices' statuses; None if not measurable yet."""
    load = mesh_load(statuses)
    return None if load is None else load.rho(layers, proposers)


def richest_fit(layers: int, proposers: int, lam: float, alpha_max: float, limit: float) -> tuple[int, int] | None:
    """The (M', k') with M' ≤ M and k' ≤ k of most inferences, then fewest layers, whose ρ ≤ limit.

    M' = 0 is one inference whatever k', so it is returned as (0, 0). None when
    even a single inference per prompt exceeds the limit.
    """
    candidates = [(0, 0)] + [(m, k) for m in range(1, layers + 1) for k in range(proposers + 1)]
    fitting = [(m, k) for m, k in candidates if utilisation(m, k, lam, alpha_max) <= limit]
    return max(fitting, key=lambda c: (inferences_per_prompt(*c), -c[0]), default=None)
