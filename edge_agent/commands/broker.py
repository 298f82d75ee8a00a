from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from edge_agent import brokerconf
from edge_agent.errors import ConfigError


def spec_from(data: dict[str, Any]) -> brokerconf.BrokerSpec:
    try:
        tls = data.pop("tls", None)
        return brokerconf.BrokerSpec(
            listeners=[brokerconf.Listener(**li) for li in data.pop("listeners")],
            peers=[brokerconf.PeerBroker(**p) for p in data.pop("peers", [])],
            tls=brokerconf.TlsFiles(**tls) if tls else None,
            restart_timeout=tuple(data.pop("restart_timeout", (2, 20))),  # type: ignore[arg-type]
            **data,
        )
    except (TypeError, KeyError) as err:
        raise ConfigError(f"invalid broker spec: {err}") from None


@click.group()
def broker() -> None:
    """Render mosquitto configuration (the same generator the local mesh uses)."""


@broker.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--acl", "acl_out", type=click.Path(dir_okay=False), help="Also write the device's ACL file here.")
def render(spec: str, acl_out: str | None) -> None:
    """Print mosquitto.conf for the device described in SPEC (YAML)."""
    data = yaml.safe_load(Path(spec).read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{spec} must be a mapping")
    local_users = data.pop("local_users", [])
    parsed = spec_from(data)
    click.echo(brokerconf.render(parsed), nl=False)
    if acl_out:
        Path(acl_out).write_text(brokerconf.render_acl(parsed.device, [p.device for p in parsed.peers], local_users))
