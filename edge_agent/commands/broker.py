from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from edge_agent import brokerconf, hubconf
from edge_agent.errors import ConfigError


def spec_from(data: dict[str, Any]) -> brokerconf.BrokerSpec:
    try:
        tls = data.pop("tls", None)
        hub = data.pop("hub", None)
        return brokerconf.BrokerSpec(
            listeners=[brokerconf.Listener(**li) for li in data.pop("listeners")],
            peers=[brokerconf.PeerBroker(**p) for p in data.pop("peers", [])],
            tls=brokerconf.TlsFiles(**tls) if tls else None,
            hub=_hub_from(hub) if hub else None,
            restart_timeout=tuple(data.pop("restart_timeout", (2, 20))),  # type: ignore[arg-type]
            **data,
        )
    except (TypeError, KeyError) as err:
        raise ConfigError(f"invalid broker spec: {err}") from None


def _hub_from(data: dict[str, Any]) -> brokerconf.HubBridge:
    """The `hub` mapping of a spec: nodes as "host:port" strings, username, password and, for TLS
    to the cluster, `tls: {cafile or capath, certfile, keyfile}`."""
    nodes = []
    for address in data.pop("nodes"):
        host, sep, port = str(address).rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"invalid hub node address {address!r}: expected host:port")
        nodes.append((host, int(port)))
    tls = data.pop("tls", None)
    return brokerconf.HubBridge(nodes=nodes, tls=brokerconf.HubTls(**tls) if tls else None, **data)


def _read_yaml(source: str) -> dict[str, Any]:
    """A YAML mapping from a file, or from stdin when source is '-' (keeps secrets off disk)."""
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text()
        except OSError as err:
            raise ConfigError(f"cannot read {source}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping")
    return data


def _spec_and_users(source: str) -> tuple[brokerconf.BrokerSpec, list[str]]:
    data = _read_yaml(source)
    local_users = list(data.pop("local_users", []))
    return spec_from(data), local_users


def _checked(render: Any, *args: Any) -> str:
    try:
        return str(render(*args))
    except ValueError as err:
        raise ConfigError(str(err)) from None


@click.group()
def broker() -> None:
    """Render mosquitto configuration (the same generator the local mesh uses)."""


@broker.command()
@click.argument("spec")
@click.option("--acl", "acl_out", type=click.Path(dir_okay=False), help="Also write the device's ACL file here.")
def render(spec: str, acl_out: str | None) -> None:
    """Print mosquitto.conf for the device described in SPEC (a YAML file, or - for stdin)."""
    parsed, local_users = _spec_and_users(spec)
    click.echo(_checked(brokerconf.render, parsed), nl=False)
    if acl_out:
        peers = [p.device for p in parsed.peers]
        Path(acl_out).write_text(_checked(brokerconf.render_acl, parsed.device, peers, local_users))


@broker.command()
@click.argument("spec")
def acl(spec: str) -> None:
    """Print the ACL file (by username) for the device described in SPEC (file, or - for stdin)."""
    parsed, local_users = _spec_and_users(spec)
    peers = [p.device for p in parsed.peers]
    click.echo(_checked(brokerconf.render_acl, parsed.device, peers, local_users), nl=False)


@broker.command("hub-definitions")
@click.argument("users", default="-")
def hub_definitions(users: str) -> None:
    """Print RabbitMQ definitions (users, permissions, topic permissions) for the hub topology.

    USERS is a YAML mapping device: password (default: stdin); load the output on every node of
    the cluster with `rabbitmqctl import_definitions FILE` (or load_definitions in rabbitmq.conf).
    """
    data = _read_yaml(users)
    click.echo(_checked(hubconf.render_definitions, {str(k): str(v) for k, v in data.items()}), nl=False)


@broker.command()
@click.argument("users", default="-")
@click.option("--iterations", type=click.IntRange(1, 10_000_000), default=brokerconf.PASSWORD_ITERATIONS,
              show_default=True, help="PBKDF2 iterations.")
def passwd(users: str, iterations: int) -> None:
    """Print a mosquitto password file for USERS, a YAML mapping username: password (default: stdin).

    The same credentials always give the same file, so re-deploying is a no-op.
    """
    data = _read_yaml(users)
    click.echo(_checked(brokerconf.render_passwords, {str(k): str(v) for k, v in data.items()}, iterations),
               nl=False)
