"""Sweeps of the simulator over λ/λ*, the largest stable rate, and their CSV/PNG output.

Rates are given as multiples of Theorem 1's λ* so that one sweep reads the
same for any board speeds: the theorem predicts the bend at λ/λ* = 1 for
uniform peer choice, and a load-aware policy may hold past it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from edge_agent.theory.peerchoice import Policy
from edge_agent.theory.simulator import SimConfig, SimResult, simulate

CSV_FIELDS = (
    "policy", "ratio", "rate", "rho", "mean_latency", "p95_latency",
    "mean_queue", "first_half_queue", "second_half_queue", "final_queue", "max_queue", "completed", "stable",
)  # fmt: skip


@dataclass(frozen=True)
class SweepPoint:
    policy: Policy
    ratio: float  # λ / λ*
    result: SimResult

    def row(self) -> dict[str, object]:
        values = self.result.as_dict()
        return {"policy": self.policy, "ratio": self.ratio} | {f: values[f] for f in CSV_FIELDS[2:]}


def sweep(base: SimConfig, ratios: Sequence[float], policies: Sequence[Policy] | None = None) -> list[SweepPoint]:
    """Simulate `base` at each ratio × λ*, once per policy (default: base.policy)."""
    points = []
    for policy in policies or (base.policy,):
        for ratio in ratios:
            config = replace(base, policy=policy, rate=ratio * base.lambda_star)
            points.append(SweepPoint(policy, ratio, simulate(config)))
    return points


def is_stable(config: SimConfig, seeds: Sequence[int]) -> bool:
    """Majority verdict over several seeds: one lucky or unlucky run does not decide."""
    votes = sum(simulate(replace(config, seed=s)).stable for s in seeds)
    return 2 * votes > len(seeds)


def largest_stable_rate(base: SimConfig, low: float, high: float, steps: int, seeds: Sequence[int]) -> float:
    """Bisect λ/λ* in [low, high] for the largest rate `is_stable` accepts; returns λ.

    Assumes stability is monotone in λ, `low` stable and `high` unstable; the
    result is within (high - low) / 2**steps × λ* of the bisection's boundary
    and is `low` × λ* if nothing above `low` was found stable.
    """
    for _ in range(steps):
        middle = (low + high) / 2
        if is_stable(base.with_rate(middle * base.lambda_star), seeds):
            low = middle
        else:
            high = middle
    return low * base.lambda_star


def write_csv(points: Sequence[SweepPoint], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for point in points:
            writer.writerow({k: "" if v is None else v for k, v in point.row().items()})


def write_plot(points: Sequence[SweepPoint], path: Path, title: str = "") -> None:
    """Mean queue and mean latency against λ/λ*, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (queue_ax, latency_ax) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for policy in dict.fromkeys(p.policy for p in points):
        mine = [p for p in points if p.policy == policy]
        ratios = [p.ratio for p in mine]
        queue_ax.plot(ratios, [p.result.mean_queue for p in mine], marker="o", label=policy)
        latency = [p.result.mean_latency for p in mine]
        latency_ax.plot(ratios, [v if math.isfinite(v) else math.nan for v in latency], marker="o", label=policy)
    for ax, label in ((queue_ax, "mean tasks per device (time average)"), (latency_ax, "mean latency (s)")):
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("λ / λ*  (λ* = 1 / (((k+1)M+1) α_max))")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
