"""The `edge-agent` command.

Each subcommand lives in its own module under edge_agent/commands/ and is
imported only when it runs, so `edge-agent submit` on a board never loads the
TUI or the model runtime. Domain errors become one line on stderr, exit 1.
"""

from __future__ import annotations

import importlib

import click

from edge_agent import __version__
from edge_agent.errors import EdgeAgentError

# name -> (module under edge_agent.commands, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run", "run", "Run the agent daemon on this board."),
    "api": ("api", "api", "Serve the OpenAI-compatible API of this board."),
    "submit": ("submit", "submit", "Submit a prompt to the mesh and print the answer."),
    "status": ("status", "status", "List every device seen on the mesh."),
    "mesh": ("mesh", "mesh", "Start, inspect and stop a local mesh of virtual devices."),
    "models": ("models", "models", "List, fetch and verify model files."),
    "broker": ("broker", "broker", "Render mosquitto configuration for a device."),
    "demo": ("demo", "demo", "Bring up a local mesh, answer one prompt, take it down."),
    "simulate": ("simulate", "simulate", "Simulate the mesh's queues for given M, k, rate and board speeds."),
    "plan": ("plan", "plan", "Check every (M, k) against the stability bound and recommend one."),
    "eval": ("eval", "eval", "Run the paper's experiment on a running mesh."),
    "tui": ("tui", "tui", "Watch the mesh live: queues, jobs, stability, health."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        module = importlib.import_module(f"edge_agent.commands.{module_name}")
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EdgeAgentError as err:
            raise click.ClickException(str(err)) from err
        except KeyboardInterrupt:  # click would print "Aborted!" and exit 1
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(130) from None


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="edge-agent")
def cli() -> None:
    """Distributed Mixture-of-Agents on edge boards over an MQTT mesh."""


def main() -> None:
    cli(standalone_mode=True)
