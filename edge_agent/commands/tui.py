from __future__ import annotations

from typing import Any

import click

from edge_agent.commands.common import broker_options, connection
from edge_agent.errors import ConfigError


@click.command()
@click.option("--layers", "-M", type=click.IntRange(0, 8), default=None,
              help="MoA layers M for prompts asked from the TUI (default: the device's setting).")
@click.option("--proposers", "-k", type=click.IntRange(0, 64), default=None,
              help="Peers per layer k for prompts asked from the TUI (default: the device's setting).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=300.0, show_default=True,
              help="Seconds to wait for the answer to a prompt asked from the TUI.")
@broker_options
def tui(layers: int | None, proposers: int | None, timeout_s: float, **kwargs: Any) -> None:
    """Watch the mesh live: every device's queue, each job's progress, stability and health.

    Keys: / ask the mesh, m and k change M and k, c clears finished jobs, q quits.
    """
    try:
        broker, credentials = connection(kwargs)
    except OSError as err:
        raise ConfigError(f"cannot read the broker password file: {err.strerror or err}") from None
    from edge_agent.tui.app import make_app
    from edge_agent.tui.feed import probe

    probe(broker, credentials)  # a wrong address fails here, in one line, not inside the full screen
    make_app(broker, credentials, layers, proposers, answer_timeout_s=timeout_s).run()
