"""`edge-agent simulate`: run the DMoA queueing simulator from the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import cast

import click

from edge_agent.errors import ConfigError
from edge_agent.theory import simulator as sim
from edge_agent.theory.peerchoice import POLICIES, Policy
from edge_agent.theory.simulator import SERVICES, Service, SimConfig, SimResult
from edge_agent.theory.stability import inferences_per_prompt, lambda_star, parse_alphas

DEFAULT_DURATION_IN_ALPHAS = 20_000


def read_recorded(path: Path) -> tuple[float, ...]:
    """Recorded inference seconds: numbers separated by whitespace or commas; '#' starts a comment."""
    values = []
    for line in path.read_text().splitlines():
        for part in line.split("#", 1)[0].replace(",", " ").split():
            try:
                values.append(float(part))
            except ValueError:
                raise ConfigError(f"{path}: {part!r} is not a number of seconds") from None
    if not values:
        raise ConfigError(f"{path}: no recorded durations")
    return tuple(values)


def parse_ratios(text: str) -> list[float]:
    try:
        ratios = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--sweep wants comma-separated numbers, got {text!r}") from None
    if not ratios or any(not math.isfinite(r) or r <= 0 for r in ratios):
        raise ConfigError("--sweep ratios must be positive numbers")
    return ratios


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _report(config: SimConfig, result: SimResult) -> list[str]:
    rows = [
        ("inferences/prompt", str(inferences_per_prompt(config.layers, config.proposers))),
        ("rate λ (/s per user)", f"{config.rate:.4g}"),
        ("λ* (/s per user)", f"{result.lambda_star:.4g}"),
        ("ρ", f"{result.rho:.3f}"),
        ("mean latency (s)", _fmt(result.mean_latency)),
        ("p95 latency (s)", _fmt(result.p95_latency)),
        ("mean queue", _fmt(result.mean_queue)),
        ("final queue", _fmt(result.final_queue)),
        ("max queue", str(result.max_queue)),
        ("queue 1st→2nd half", f"{_fmt(result.first_half_queue)} → {_fmt(result.second_half_queue)}"),
        ("completed prompts", str(result.completed)),
        ("stable", "yes" if result.stable else "no (queues grow)"),
        ("per-device queue", " ".join(f"{q:.2f}" for q in result.device_queues)),
    ]
    if result.truncated:
        rows.append(("note", f"event cap reached at t={result.end_time:.0f} s"))
    head = f"{config.devices} devices, M={config.layers}, k={config.proposers}, {config.policy}, {config.service}"
    return [head] + [f"  {name:<22}{value}" for name, value in rows]


@click.command("simulate")
@click.option("--devices", "-n", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--layers", "-M", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--proposers", "-k", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--rate", type=float, help="Prompts per second per user (λ).")
@click.option(
    "--alpha",
    multiple=True,
    help="Mean inference seconds: once for all devices, or one per device, "
    "repeated (--alpha 1 --alpha 2) or comma-separated (--alpha 1,2).",
)
@click.option("--service", type=click.Choice(SERVICES), help="Service-time law [exponential; replay with --replay].")
@click.option(
    "--replay",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File of recorded inference seconds; rescaled to each --alpha, used as recorded without one.",
)
@click.option("--policy", type=click.Choice(POLICIES), default="uniform", show_default=True)
@click.option("--duration", type=float, help="Simulated seconds [20000 × the largest alpha].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sweep", "sweep_ratios", help='Comma-separated λ/λ* values, e.g. "0.5,0.7,0.9,1.1,1.3".')
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Directory for sweep.csv and sweep.png.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def simulate(
    devices: int,
    layers: int,
    proposers: int,
    rate: float | None,
    alpha: tuple[str, ...],
    service: str | None,
    replay: Path | None,
    policy: str,
    duration: float | None,
    seed: int,
    sweep_ratios: str | None,
    out: Path | None,
    as_json: bool,
) -> None:
    """Simulate DMoA queues: Poisson prompts, FCFS devices, M layers of k+1 proposers."""
    service = service or ("replay" if replay else "exponential")
    if (service == "replay") != (replay is not None):
        raise ConfigError("--service replay and --replay FILE go together")
    recorded = read_recorded(replay) if replay else ()
    if alpha:
        alphas = parse_alphas(alpha)
    elif recorded:
        alphas = [sum(recorded) / len(recorded)]
    else:
        raise ConfigError("give the mean inference time with --alpha (or recorded times with --replay)")
    if len(alphas) == 1:
        alphas *= devices
    if len(alphas) != devices:
        raise ConfigError(f"--alpha: got {len(alphas)} values for {devices} devices (give 1 or {devices})")
    if (rate is None) == (sweep_ratios is None):
        raise ConfigError("give exactly one of --rate and --sweep")
    if sweep_ratios is not None and out is None:
        raise ConfigError("--sweep needs --out DIR")
    ratios = parse_ratios(sweep_ratios) if sweep_ratios is not None else []
    if rate is None:
        rate = ratios[0] * lambda_star(layers, proposers, alphas)
    config = SimConfig(
        devices=devices,
        layers=layers,
        proposers=proposers,
        rate=rate,
        alphas=tuple(alphas),
        service=cast(Service, service),
        replay=recorded,
        policy=cast(Policy, policy),
        duration=duration if duration is not None else DEFAULT_DURATION_IN_ALPHAS * max(alphas),
        seed=seed,
    )
    if ratios and out is not None:
        _sweep(config, ratios, out, as_json)
        return
    result = sim.simulate(config)
    if as_json:
        meta = {"devices": devices, "layers": layers, "proposers": proposers, "policy": policy,
                "service": service, "duration": config.duration, "seed": seed}  # fmt: skip
        click.echo(json.dumps(meta | result.as_dict()))
    else:
        click.echo("\n".join(_report(config, result)))


def _sweep(config: SimConfig, ratios: list[float], out: Path, as_json: bool) -> None:
    from edge_agent.theory.sweep import sweep, write_csv, write_plot

    points = sweep(config, ratios)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "sweep.csv", out / "sweep.png"
    write_csv(points, csv_path)
    title = f"n={config.devices} M={config.layers} k={config.proposers} {config.policy} {config.service}"
    write_plot(points, png_path, title)
    if as_json:
        click.echo(json.dumps({"points": [p.row() for p in points], "csv": str(csv_path), "png": str(png_path)}))
        return
    click.echo(f"{'λ/λ*':>6} {'λ':>9} {'ρ':>6} {'latency':>9} {'p95':>9} {'queue':>8} {'1st half':>9} "
               f"{'2nd half':>9} {'final':>8}  stable")  # fmt: skip
    for p in points:
        r = p.result
        click.echo(
            f"{p.ratio:>6.2f} {r.rate:>9.4g} {r.rho:>6.2f} {_fmt(r.mean_latency):>9} {_fmt(r.p95_latency):>9} "
            f"{_fmt(r.mean_queue):>8} {_fmt(r.first_half_queue):>9} {_fmt(r.second_half_queue):>9} "
            f"{_fmt(r.final_queue):>8}  {'yes' if r.stable else 'no'}"
        )
    click.echo(f"wrote {csv_path} and {png_path}")
