"""Options shared by the commands that talk to a broker."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from edge_agent.config import read_secret
from edge_agent.wire.mqtt import BrokerAddress, Credentials

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_BROKER = os.environ.get("EDGE_AGENT_BROKER", "127.0.0.1:1883")


def broker_options(func: F) -> F:
    """--broker plus the TLS and login options the agent itself has."""
    options = [
        click.option("--broker", default=DEFAULT_BROKER, show_default=True,
                     help="Broker HOST:PORT (default: this board's; env EDGE_AGENT_BROKER)."),
        click.option("--username", envvar="EDGE_AGENT_USERNAME", default="", help="Broker login."),
        click.option("--password-file", envvar="EDGE_AGENT_PASSWORD_FILE", default="",
                     type=click.Path(dir_okay=False), help="File holding the broker password."),
        click.option("--tls-ca", envvar="EDGE_AGENT_TLS_CA", default="", help="CA certificate (enables TLS)."),
        click.option("--tls-cert", envvar="EDGE_AGENT_TLS_CERT", default="", help="Client certificate."),
        click.option("--tls-key", envvar="EDGE_AGENT_TLS_KEY", default="", help="Client key."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def connection(kwargs: dict[str, Any]) -> tuple[BrokerAddress, Credentials]:
    """Pop the broker options from a command's kwargs."""
    password_file = kwargs.pop("password_file")
    password = read_secret(password_file, "broker password") if password_file else ""
    credentials = Credentials(kwargs.pop("username"), password, kwargs.pop("tls_ca"),
                              kwargs.pop("tls_cert"), kwargs.pop("tls_key"))
    return BrokerAddress.parse(kwargs.pop("broker")), credentials
