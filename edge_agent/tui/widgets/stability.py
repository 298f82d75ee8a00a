"""The stability panel: Theorem 1 utilisation, mesh-wide and per device."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from edge_agent.tui.utilisation import WARN, Figures, level
from edge_agent.tui.widgets import cells

VERDICT = {"ok": "stable", "busy": "stable, busy", "warn": f"WARNING ρ ≥ {WARN}",
           "unstable": "UNSTABLE: queues grow", "unknown": "not measured yet"}


def summary(f: Figures) -> Text:
    state = level(f.rho)
    text = Text.assemble("mesh ρ ", cells.rho(f.rho, state), "  ", (VERDICT[state], cells.LEVEL_STYLE[state]))
    lam = "–" if f.lam_mean is None else f"{f.lam_mean:.3f}/s"
    alpha = "–" if f.alpha_max is None else f"{f.alpha_max:.2f} s ({f.slowest})"
    text.append(f"\nλ mean per user {lam} · α_max {alpha}", style="dim")
    return text


Row = tuple[Text | str, ...]
CONFIG_COLUMNS = ("config", "J", "ρ", "λ* /s")
DEVICE_COLUMNS = ("device", "J", "λ /s", "α s", "ρ")


def config_rows(f: Figures) -> list[Row]:
    return [(f"M={c.layers} k={c.proposers}", str(c.inferences), cells.rho(c.rho, level(c.rho)),
             cells.number(c.lambda_star, 3)) for c in f.configs]


def device_rows(f: Figures) -> list[Row]:
    return [(d.device, str(d.inferences), cells.number(d.lam, 3), cells.number(d.alpha, 2),
             cells.rho(d.rho, level(d.rho))) for d in f.devices]


def table(columns: tuple[str, ...], rows: list[Row]) -> Table:
    grid = Table(box=None, padding=(0, 1), expand=True, header_style="bold dim")
    for n, name in enumerate(columns):
        grid.add_column(name, justify="left" if n == 0 else "right")
    for row in rows:
        grid.add_row(*row)
    return grid


def _key(parts: list[Text | str]) -> tuple[str, ...]:
    """What the panel would show, as text and style: redraw only when this changes."""
    return tuple(f"{p.plain}|{p.style}|{p.spans}" if isinstance(p, Text) else p for p in parts)


class StabilityPanel(VerticalScroll):
    """ρ = ((k+1)M+1)·λ·α_max, coloured green < 0.5 ≤ yellow < 0.8 ≤ red."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(id="figures")

    def show(self, f: Figures) -> None:
        head, configs, devices = summary(f), config_rows(f), device_rows(f)
        key = _key([head, *(cell for row in configs + devices for cell in row), str(len(configs))])
        if key == self._shown:
            return
        resized = len(key) != len(self._shown)
        self._shown = key
        body = Group(head, Text(""), table(CONFIG_COLUMNS, configs), Text(""), table(DEVICE_COLUMNS, devices))
        self.query_one("#figures", Static).update(body, layout=resized)
        state = level(f.rho)
        for name in ("ok", "busy", "warn", "unstable"):
            self.set_class(state == name, f"-{name}")
