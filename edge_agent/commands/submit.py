from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import click

from edge_agent.client.progress import describe
from edge_agent.client.submit import SubmitClient
from edge_agent.commands.common import broker_options, connection
from edge_agent.wire.messages import Answer, Progress


def answer_json(answer: Answer) -> dict[str, Any]:
    body = asdict(answer)
    del body["secret"]  # proof of origin for the client, nothing for the user
    body["inferences"] = [asdict(i) for i in answer.inferences]
    return body


@click.command()
@click.argument("prompt")
@click.option("--layers", "-M", type=click.IntRange(0, 8), default=None,
              help="MoA layers M (default: the device's setting).")
@click.option("--proposers", "-k", type=click.IntRange(0, 64), default=None,
              help="Peers per layer k (default: the device's setting).")
@click.option("--policy", type=click.Choice(["", "uniform", "least-loaded"]), default="",
              help="Peer choice (default: the device's setting).")
@click.option("--device", default=None, help="Device id (default: the agent on the broker).")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@broker_options
def submit(prompt: str, layers: int | None, proposers: int | None, policy: str, device: str | None, timeout_s: float,
           as_json: bool, quiet: bool, **kwargs: Any) -> None:
    """Submit PROMPT (use - to read it from stdin) and print the answer."""
    if prompt == "-":
        prompt = sys.stdin.read()
    broker, credentials = connection(kwargs)

    def show(p: Progress) -> None:
        # The closing line comes from the answer itself, which may overtake these events.
        if not quiet and p.event not in ("done", "failed"):
            click.echo(describe(p), err=True)

    streamed: list[str] = []

    def token(piece: str) -> None:
        # The final answer as the origin generates it; the client adds any piece it missed.
        streamed.append(piece)
        click.echo(piece, nl=False)

    with SubmitClient(broker, device, credentials) as client:
        answer = client.submit(prompt, layers, proposers, policy, timeout_s=timeout_s, on_progress=show,
                               on_token=None if as_json else token)
    if streamed:
        click.echo("")
    for note in answer.notes:  # admission decisions change what ran: shown even with --quiet
        if not quiet or note.startswith("admission"):
            click.echo(f"note: {note}", err=True)
    if not quiet:
        degraded = ", degraded" if answer.degraded else ""
        click.echo(f"done in {answer.latency_s:.1f} s: {len(answer.inferences)} inferences{degraded}", err=True)
    if as_json:
        click.echo(json.dumps(answer_json(answer), ensure_ascii=False))
    elif answer.ok and not streamed:
        click.echo(answer.answer)
    if not answer.ok:
        raise click.ClickException(f"job {answer.job_id} failed: {answer.error}")
