"""Formatting of single values into table cells (rich Text); pure functions."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"
HISTORY_WIDTH = 12
LEVEL_STYLE = {"ok": "green", "busy": "yellow", "warn": "bold red", "unstable": "bold white on red",
               "unknown": "dim"}
_CURRENT = re.compile(r"^(propose|aggregate) (\S+) layer (\d+)$")


def sparkline(values: Sequence[int], width: int = HISTORY_WIDTH) -> Text:
    """The last `width` values as block characters, scaled to their maximum."""
    recent = list(values)[-width:]
    if not recent:
        return Text("")
    top = max(max(recent), 1)
    chars = "".join(BLOCKS[min(len(BLOCKS) - 1, round(v / top * (len(BLOCKS) - 1)))] for v in recent)
    return Text(chars.rjust(width), style="cyan" if max(recent) else "dim cyan")


def number(value: float | None, digits: int = 2, unit: str = "") -> Text:
    if value is None:
        return Text("–", style="dim", justify="right")
    return Text(f"{value:.{digits}f}{unit}", justify="right")


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def presence(state: str, age: float | None) -> Text:
    if state == "online":
        return Text("● online", style="green")
    if state == "stale":
        return Text(f"◐ {ago(age)}", style="yellow")
    return Text(f"○ off, {ago(age)}", style="dim red")


def activity(online: bool, busy: bool, current: str) -> Text:
    """idle, or what the device is inferring: 'propose 3f9c2a1b L1'."""
    if not online:
        return Text("–", style="dim")
    if not busy:
        return Text("idle", style="dim")
    match = _CURRENT.match(current)
    if match:
        role, job, layer = match.groups()
        return Text(f"{role} {job[:8]} L{layer}", style="bold")
    return Text(current or "busy", style="bold")


def queue(size: int) -> Text:
    return Text(str(size), style="bold" if size else "dim", justify="right")


def rho(value: float | None, state: str) -> Text:
    if value is None:
        return Text("–", style="dim", justify="right")
    return Text(f"{value:.2f}", style=LEVEL_STYLE[state], justify="right")


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.0f} min"
