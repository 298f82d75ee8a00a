from __future__ import annotations

import json
import time
from typing import Any

import click

from edge_agent.client.status import read_statuses
from edge_agent.commands.common import broker_options, connection

COLUMNS = ("device", "online", "model", "queue", "busy", "alpha", "tokens_per_s", "rho", "cpu", "memory",
           "temperature", "peers")


def _cell(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if name == "peers":
        return str(len(value or []))
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--wait", "wait_s", type=float, default=1.0, show_default=True,
              help="Seconds to collect statuses.")
@broker_options
def status(as_json: bool, wait_s: float, **kwargs: Any) -> None:
    """List every device seen on the mesh with its status fields."""
    broker, credentials = connection(kwargs)
    rows = read_statuses(broker.host, broker.port, wait_s, credentials)
    now = time.time()
    for row in rows:
        row["age_s"] = round(now - row["ts"], 1) if row.get("ts") else None
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo(f"no device has reported on {broker}", err=True)
        return
    table = [COLUMNS] + [tuple(_cell(r, c) for c in COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    for row in rows:
        for alert in row.get("alerts") or []:
            click.echo(f"{row['device']}: {alert}")
        for device in row.get("conflicts") or []:
            click.echo(f"{row['device']}: device id {device} is claimed by two boards at once")
