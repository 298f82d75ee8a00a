from __future__ import annotations

import tempfile
from pathlib import Path

import click

from edge_agent.client.progress import describe
from edge_agent.client.submit import SubmitClient
from edge_agent.ops import localmesh
from edge_agent.ops.localmesh import agent_settings
from edge_agent.wire.messages import Progress
from edge_agent.wire.mqtt import BrokerAddress

DEFAULT_PROMPT = "Give three reasons to run small language models on single-board computers."


@click.command()
@click.argument("prompt", default=DEFAULT_PROMPT)
@click.option("--devices", "-n", type=click.IntRange(2, 16), default=3, show_default=True)
@click.option("--layers", "-M", type=click.IntRange(0, 4), default=1, show_default=True)
@click.option("--proposers", "-k", type=click.IntRange(0, 15), default=2, show_default=True)
@click.option("--model", default="smollm2-135m-instruct-q4_1", show_default=True)
@click.option("--address-base", default="127.0.1", show_default=True)
def demo(prompt: str, devices: int, layers: int, proposers: int, model: str, address_base: str) -> None:
    """Bring up a local mesh, answer PROMPT with distributed MoA, show each layer, take the mesh down."""
    with tempfile.TemporaryDirectory(prefix="edge-demo-") as tmp:
        click.echo(f"starting {devices} virtual devices (one mosquitto + one agent each) ...", err=True)
        mesh = localmesh.up(devices, Path(tmp), agent_settings(model, "llama", 0.0, ()), address_base)
        try:
            for d in mesh:
                click.echo(f"  {d.device} on {d.broker}", err=True)
            origin = mesh[0]
            click.echo(f"\nprompt at {origin.device}: {prompt}", err=True)
            streamed: list[str] = []

            def token(piece: str) -> None:
                if not streamed:
                    click.echo(f"\nfinal answer from {origin.device}, as it is generated:\n", err=True)
                streamed.append(piece)
                click.echo(piece, nl=False)

            def progress(p: Progress) -> None:
                if not streamed:  # once the answer streams, the events would cut through it
                    click.echo("  " + describe(p), err=True)

            with SubmitClient(BrokerAddress(origin.host, origin.port), origin.device) as client:
                answer = client.submit(prompt, layers, proposers, timeout_s=600, on_token=token,
                                       on_progress=progress)
            if streamed:
                click.echo("")
            click.echo("\ninferences:", err=True)
            for i in answer.inferences:
                click.echo(f"  layer {i.layer} {i.role:<9} {i.device:<8} {i.seconds:5.2f} s  "
                           f"{i.prompt_tokens:4d} prompt + {i.completion_tokens:3d} completion tokens", err=True)
            click.echo(f"\nanswered in {answer.latency_s:.1f} s, {len(answer.inferences)} inferences"
                       f"{', degraded' if answer.degraded else ''}", err=True)
            if not answer.ok:
                click.echo(f"FAILED: {answer.error}")
            elif not streamed:
                click.echo(f"\n{answer.answer}")
        finally:
            localmesh.down(Path(tmp))
            click.echo("\nmesh is down", err=True)
