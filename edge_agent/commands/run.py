from __future__ import annotations

import logging

import click

from edge_agent.config import load_config


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), envvar="EDGE_AGENT_CONFIG",
              help="Agent settings (YAML); EDGE_AGENT_<SETTING> variables override it.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def run(config_path: str | None, log_level: str) -> None:
    """Run the agent daemon: queue, model worker and mesh client, until SIGTERM."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from edge_agent.node.agent import Agent

    Agent(load_config(config_path)).run()
