from __future__ import annotations

import json
from pathlib import Path

import click

from edge_agent.ops import localmesh


@click.group()
def mesh() -> None:
    """Start, inspect and stop a local mesh of virtual devices."""


@mesh.command()
@click.option("--devices", "-n", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option("--model", default="smollm2-135m-instruct-q4_1", show_default=True, help="Model card name or GGUF path.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".mesh", show_default=True)
@click.option("--engine", type=click.Choice(["llama", "fake"]), default="llama", show_default=True)
@click.option("--fake-seconds", type=float, default=0.5, show_default=True, help="Service time of the fake engine.")
@click.option("--address-base", default="127.0.1", show_default=True, help="Device i listens on BASE.i")
@click.option("--port", type=click.IntRange(1, 65535), default=1883, show_default=True)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any agent setting, for every device.")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True)
@click.option("--topology", type=click.Choice(["full", "hub"]), default="full", show_default=True,
              help="full: every broker bridged to every other; hub: each bridged to a RabbitMQ cluster.")
@click.option("--hub-nodes", type=click.IntRange(1, 9), default=3, show_default=True,
              help="Nodes of the local RabbitMQ cluster (topology hub).")
@click.option("--hub-base", default="127.0.2", show_default=True, help="Hub node i listens on HUB_BASE.i")
def up(devices: int, model: str, directory: str, engine: str, fake_seconds: float, address_base: str,
       port: int, settings: tuple[str, ...], timeout_s: float, topology: str, hub_nodes: int, hub_base: str) -> None:
    """Start N brokers and N agents; return once every device sees every other."""
    agent_settings = localmesh.agent_settings(model, engine, fake_seconds, settings)
    started = localmesh.up(devices, Path(directory).resolve(), agent_settings, address_base, port, timeout_s,
                           hub_nodes=hub_nodes if topology == "hub" else 0, hub_base=hub_base)
    for d in started:
        click.echo(f"{d.device}  {d.broker}  broker pid {d.broker_pid}  agent pid {d.agent_pid}")
    click.echo(f"mesh of {len(started)} devices is up; stop it with: edge-agent mesh down --dir {directory}", err=True)


@mesh.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".mesh", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def status(directory: str, as_json: bool) -> None:
    """List the mesh's devices, brokers and processes."""
    rows = localmesh.status(Path(directory).resolve())
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        state = "running" if r["agent_running"] and r["broker_running"] else "DOWN"
        click.echo(f"{r['device']}  {r['broker']}  {state}")


@mesh.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".mesh", show_default=True)
def down(directory: str) -> None:
    """Stop every process the mesh started, by pid."""
    killed = localmesh.down(Path(directory).resolve())
    note = f" ({len(killed)} needed SIGKILL)" if killed else ""
    click.echo(f"mesh in {directory} is down{note}", err=True)
