"""The ask panel: a prompt line and the answers to prompts sent from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Static

from edge_agent.tui.widgets import cells
from edge_agent.wire.messages import Answer

KEEP = 3


class PromptInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send"),
        Binding("escape", "leave", "Back"),
    ]

    def action_leave(self) -> None:
        self.screen.set_focus(None)


@dataclass
class Exchange:
    job_id: str
    prompt: str
    answer: Answer | None = None
    error: str = ""


def render_exchange(x: Exchange) -> RenderableType:
    head = Text.assemble(("? ", "bold magenta"), (x.prompt, "bold"), (f"  [{x.job_id[:8]}]", "dim"))
    if x.error:
        return Group(head, Text(f"✗ {x.error}", style="red"))
    if x.answer is None:
        return Group(head, Text("… waiting for the mesh", style="dim italic"))
    a = x.answer
    if not a.ok:
        return Group(head, Text(f"✗ job failed: {a.error}", style="red"))
    meta = f"M={a.layers} k={a.proposers} · {len(a.inferences)} inferences · latency {cells.seconds(a.latency_s)}"
    if a.degraded:
        meta += " · DEGRADED"
    return Group(head, Text(a.answer), Text(meta, style="dim"))


class AskPanel(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.exchanges: dict[str, Exchange] = {}
        self._config = ""

    def compose(self) -> ComposeResult:
        with Horizontal(id="ask-line"):
            yield PromptInput(placeholder="Ask the mesh: press / to type, enter to send", id="prompt")
            yield Label(id="ask-config")
        with VerticalScroll(id="answer-box"):
            yield Static("Answers to prompts sent from here appear here.", id="answer", classes="empty")

    def set_config(self, layers: int | None, proposers: int | None, defaults: tuple[int, int] | None,
                   target: str) -> None:
        """Show M and k for the next prompt; None means the target device's default."""
        def value(name: str, chosen: int | None, default: int | None) -> str:
            if chosen is not None:
                return f"{name}={chosen}"
            return f"{name}=default" if default is None else f"{name}={default} (default)"

        m = value("M", layers, defaults[0] if defaults else None)
        k = value("k", proposers, defaults[1] if defaults else None)
        text = f"{m} {k} → {target or '?'}"
        if text != self._config:
            self._config = text
            self.query_one("#ask-config", Label).update(text)

    def pending(self, job_id: str, prompt: str) -> None:
        self.exchanges[job_id] = Exchange(job_id, prompt)
        self._redraw()

    def answered(self, answer: Answer) -> None:
        if answer.job_id in self.exchanges:
            self.exchanges[answer.job_id].answer = answer
            self._redraw()

    def failed(self, job_id: str, error: str) -> None:
        if job_id in self.exchanges:
            self.exchanges[job_id].error = error
            self._redraw()

    def answers_text(self) -> str:
        """The panel's answers as plain text (for tests)."""
        return "\n".join(x.answer.answer for x in self.exchanges.values() if x.answer is not None)

    def _redraw(self) -> None:
        for job_id in list(self.exchanges)[:-KEEP]:
            del self.exchanges[job_id]
        newest_first = [render_exchange(x) for x in reversed(self.exchanges.values())]
        answer = self.query_one("#answer", Static)
        answer.update(Group(*newest_first))
        answer.remove_class("empty")
