"""`edge-agent plan`: which (M, k) can the mesh sustain at a target rate.

α comes either from the command line or from the status every agent
publishes on the mesh, so the plan can be made before deployment or checked
against the boards as they run.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click

from edge_agent.commands.common import broker_options, connection
from edge_agent.errors import MeshError
from edge_agent.theory import stability
from edge_agent.wire.mqtt import BrokerAddress, Credentials


def alphas_from_mesh(broker: BrokerAddress, credentials: Credentials, wait_s: float) -> list[float]:
    """Mean inference times of the online devices that have published one."""
    from edge_agent.client.status import read_statuses

    statuses = read_statuses(broker.host, broker.port, wait_s, credentials)
    online = [s for s in statuses if s.get("online")]
    alphas = [float(s["alpha"]) for s in online if s.get("alpha") is not None]
    missing = sorted(str(s.get("device")) for s in online if s.get("alpha") is None)
    if missing:
        click.echo(f"note: no α published yet by {', '.join(missing)}; planning without them", err=True)
    if not alphas:
        raise MeshError(f"no online device on {broker} has published its α yet")
    return alphas


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


@click.command("plan")
@click.option(
    "--alpha",
    multiple=True,
    help="Mean inference seconds per device, repeated (--alpha 1 --alpha 2) or comma-separated (--alpha 1,2).",
)
@broker_options
@click.option("--wait", "wait_s", type=float, default=3.0, show_default=True, help="Seconds to collect statuses.")
@click.option("--rate", type=float, required=True, help="Target prompts per second per user (λ).")
@click.option("--max-layers", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def plan(alpha: tuple[str, ...], wait_s: float, rate: float, max_layers: int, as_json: bool, **kwargs: Any) -> None:
    """Evaluate every (M, k) against Theorem 1 at --rate and recommend the richest stable one.

    The devices' α come from --alpha, or else from the statuses on the broker (this board's by
    default), read with the same options as every other command."""
    broker, credentials = connection(kwargs)
    alphas = stability.parse_alphas(alpha) if alpha else alphas_from_mesh(broker, credentials, wait_s)
    rows = stability.plan(alphas, rate, stability.default_configs(len(alphas), max_layers))
    best = stability.recommend(rows)
    if as_json:
        click.echo(json.dumps({
            "rate": rate, "alphas": alphas, "configs": [r.as_dict() for r in rows],
            "recommended": best.as_dict() if best else None,
        }))  # fmt: skip
        return
    click.echo(f"{len(alphas)} devices, α_max {max(alphas):.3g} s, λ {rate:.4g} prompts/s per user")
    click.echo(f"   {'M':>2} {'k':>2} {'J':>3} {'λ*':>9} {'ρ':>6} {'latency s':>10}  stable")
    for r in rows:
        mark = "*" if r == best else " "
        click.echo(
            f" {mark} {r.layers:>2} {r.proposers:>2} {r.inferences:>3} {r.lambda_star:>9.4g} {r.rho:>6.2f} "
            f"{_fmt(r.latency, 1):>10}  {'yes' if r.stable else 'no'}"
        )
    if best is None:
        click.echo(f"no configuration is stable at λ={rate:.4g}; even M=0 needs λ < {rows[0].lambda_star:.4g}")
    else:
        click.echo(
            f"recommended: M={best.layers} k={best.proposers} ({best.inferences} inferences per prompt, "
            f"ρ={best.rho:.2f}, predicted latency {best.latency:.1f} s)"
        )
