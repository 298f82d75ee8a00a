from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click
from click._termui_impl import ProgressBar

from edge_agent.ops import modelcards as registry


class _Bar:
    """A download progress callback drawing a click progress bar on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: ProgressBar[int] | None = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            bar: ProgressBar[int] = ProgressBar(iterable=None, length=total or None, label=self.label,
                                                file=sys.stderr, show_percent=True,
                                                width=30)
            self.bar = bar
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done
        if total and done >= total:
            self.bar.__exit__(None, None, None)


@click.group()
def models() -> None:
    """List, fetch and verify model files (cards in models/)."""


@models.command("list")
@click.option("--models-dir", default="",
              help="Where model files live (default: EDGE_AGENT_MODELS_DIR or ~/.local/share).")
@click.option("--json", "as_json", is_flag=True)
def list_models(models_dir: str, as_json: bool) -> None:
    """Every model card, and whether its file is here."""
    rows = [{**asdict(c), "installed": registry.installed(c, models_dir)} for c in registry.cards()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        mark = "installed" if r["installed"] else "-"
        ram = f"{r['min_ram_mb']} MB RAM"
        click.echo(f"{r['name']:<32} {r['quantization']:<7} {ram:<12} {r['license']:<28} {mark}")


@models.command()
@click.argument("name")
@click.option("--models-dir", default="")
def fetch(name: str, models_dir: str) -> None:
    """Download NAME (skipped when present and verified) and check its sha256."""
    card = registry.card(name)
    path, what = registry.fetch(card, models_dir, _Bar(f"fetching {name}"))
    messages = {
        "present": f"{name} already present and verified: {path}",
        "fetched": f"{name} fetched and verified: {path}",
        "pinned": f"{name} fetched: {path}; its card has no sha256, so the digest was pinned in "
                  f"{registry.pin_path(path).name}",
    }
    click.echo(messages[what])


@models.command()
@click.argument("name")
@click.option("--models-dir", default="")
def verify(name: str, models_dir: str) -> None:
    """Check NAME's file against its card's (or pinned) sha256."""
    path = registry.verify(registry.card(name), models_dir)
    click.echo(f"{name} OK: {path}")
