"""Least-loaded vs uniform peer choice in the simulator: the two policy figures and a sweep.

    python -m benchmarks.sim_policies --out /tmp/sim-policies

1. latency ratio: mean latency least-loaded / uniform, n=8, M=2, k=2, all α=1,
   at ρ = 0.7 (target <= 0.75);
2. stable-rate ratio: largest stable λ least-loaded / uniform with half the
   boards twice as slow (α = 1,1,1,1,2,2,2,2), found by bisection on λ/λ* with
   a majority verdict over three seeds (target >= 1.2);
3. sweep.csv and sweep.png of the mixed mesh over λ/λ* for both policies.
One run with fixed seeds; the numbers are reproducible on any machine.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from edge_agent.theory.simulator import SimConfig, simulate
from edge_agent.theory.sweep import largest_stable_rate, sweep, write_csv, write_plot

MIXED = (1.0,) * 4 + (2.0,) * 4
SWEEP_RATIOS = (0.5, 0.7, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)


def latency_ratio(duration: float, seed: int) -> dict[str, float]:
    base = SimConfig(devices=8, layers=2, proposers=2, rate=1.0, alphas=(1.0,) * 8, duration=duration, seed=seed)
    base = base.with_rate(0.7 * base.lambda_star)
    uniform, least = simulate(base), simulate(replace(base, policy="least-loaded"))
    return {
        "uniform_mean_latency": uniform.mean_latency,
        "least_loaded_mean_latency": least.mean_latency,
        "uniform_p95_latency": uniform.p95_latency,
        "least_loaded_p95_latency": least.p95_latency,
        "latency_ratio": least.mean_latency / uniform.mean_latency,
        "p95_ratio": least.p95_latency / uniform.p95_latency,
    }


def stable_rate_ratio(duration: float, steps: int) -> dict[str, float]:
    base = SimConfig(devices=8, layers=2, proposers=2, rate=1.0, alphas=MIXED, duration=duration)
    seeds = (0, 1, 2)
    uniform = largest_stable_rate(base, 0.5, 2.0, steps, seeds)
    least = largest_stable_rate(replace(base, policy="least-loaded"), 0.5, 2.0, steps, seeds)
    return {
        "lambda_star": base.lambda_star,
        "uniform_stable_ratio": uniform / base.lambda_star,
        "least_loaded_stable_ratio": least / base.lambda_star,
        "stable_rate_ratio": least / uniform,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for sweep.csv and sweep.png")
    parser.add_argument("--duration", type=float, default=20_000.0, help="simulated seconds per run")
    parser.add_argument("--steps", type=int, default=6, help="bisection steps on λ/λ* in [0.5, 2.0]")
    args = parser.parse_args()

    latency = latency_ratio(args.duration, seed=11)
    print(f"latency ratio (least-loaded / uniform, n=8 M=2 k=2 ρ=0.7): {latency['latency_ratio']:.3f} "
          f"(mean {latency['least_loaded_mean_latency']:.2f} / {latency['uniform_mean_latency']:.2f} α; "
          f"p95 ratio {latency['p95_ratio']:.3f})")  # fmt: skip
    stable = stable_rate_ratio(args.duration, args.steps)
    print(f"largest stable λ/λ*, α=1×4 + 2×4: uniform {stable['uniform_stable_ratio']:.3f}, "
          f"least-loaded {stable['least_loaded_stable_ratio']:.3f}; "
          f"ratio {stable['stable_rate_ratio']:.3f}")  # fmt: skip

    base = SimConfig(devices=8, layers=2, proposers=2, rate=1.0, alphas=MIXED, duration=args.duration)
    points = sweep(base, SWEEP_RATIOS, ["uniform", "least-loaded"])
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(points, args.out / "sweep.csv")
    write_plot(points, args.out / "sweep.png", "n=8 M=2 k=2, α = 1×4 + 2×4, exponential service")
    for p in points:
        r = p.result
        print(f"  {p.policy:<13} λ/λ*={p.ratio:.2f}  queue {r.first_half_queue:8.2f} → {r.second_half_queue:8.2f}"
              f"  latency {r.mean_latency:9.2f}  {'stable' if r.stable else 'grows'}")  # fmt: skip
    print(f"wrote {args.out / 'sweep.csv'} and {args.out / 'sweep.png'}")
    print(json.dumps(latency | stable))


if __name__ == "__main__":
    main()
