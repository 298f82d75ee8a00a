"""The stability panel: Theorem 1 utilisation, mesh-wide and per device."""

from __future__ import annotations

from rich.console import Group, RenderableType
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


def config_table(f: Figures) -> Table:
    table = Table(box=None, padding=(0, 1), expand=True, header_style="bold dim")
    for name in ("config", "J", "ρ", "λ* /s"):
        table.add_column(name, justify="left" if name == "config" else "right")
    for c in f.configs:
        star = cells.number(c.lambda_star, 3)
        table.add_row(f"M={c.layers} k={c.proposers}", str(c.inferences), cells.rho(c.rho, level(c.rho)), star)
    return table


def device_table(f: Figures) -> Table:
    table = Table(box=None, padding=(0, 1), expand=True, header_style="bold dim")
    for name in ("device", "J", "λ /s", "α s", "ρ"):
        table.add_column(name, justify="left" if name == "device" else "right")
    for d in f.devices:
        table.add_row(d.device, str(d.inferences), cells.number(d.lam, 3), cells.number(d.alpha, 2),
                      cells.rho(d.rho, level(d.rho)))
    return table


def render_figures(f: Figures) -> RenderableType:
    return Group(summary(f), Text(""), config_table(f), Text(""), device_table(f))


class StabilityPanel(VerticalScroll):
    """ρ = ((k+1)M+1)·λ·α_max, coloured green < 0.5 ≤ yellow < 0.8 ≤ red."""

    def compose(self) -> ComposeResult:
        yield Static(id="figures")

    def show(self, f: Figures) -> None:
        self.query_one("#figures", Static).update(render_figures(f))
        state = level(f.rho)
        for name in ("ok", "busy", "warn", "unstable"):
            self.set_class(state == name, f"-{name}")
