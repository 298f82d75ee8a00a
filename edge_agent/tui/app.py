"""The TUI application: panels for devices, jobs, stability and asking the mesh."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Footer, Header, Input

from edge_agent.client.submit import SubmitClient, new_job_id
from edge_agent.tui.asker import Asker, Submitter
from edge_agent.tui.feed import ANONYMOUS, MeshFeed
from edge_agent.tui.messages import (
    AnswerReceived,
    ConnectionChanged,
    IdentityReceived,
    ProgressReceived,
    StatusReceived,
    SubmitFailed,
)
from edge_agent.tui.state import MeshState
from edge_agent.tui.widgets.ask import AskPanel
from edge_agent.tui.widgets.devices import DevicesTable
from edge_agent.tui.widgets.jobs import JobsPanel
from edge_agent.tui.widgets.stability import StabilityPanel
from edge_agent.wire.mqtt import BrokerAddress, Credentials

Clock = Callable[[], float]


class MeshApp(App[None]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "dmoa-edge"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "ask", "Ask"),
        Binding("m", "layers", "Layers M"),
        Binding("k", "proposers", "Proposers k"),
        Binding("c", "clear_finished", "Clear done"),
        Binding("q", "quit", "Quit"),
    ]
    REFRESH_S = 0.25
    """Views redraw at most this often (changes are coalesced in between)."""
    TICK_S = 1.0
    """...and at least this often, for ages and elapsed times."""

    def __init__(self, broker: BrokerAddress, credentials: Credentials = ANONYMOUS,
                 layers: int | None = None, proposers: int | None = None, *, clock: Clock = time.time,
                 live: bool = True, submitter: Callable[[], Submitter] | None = None, answer_timeout_s: float = 300.0,
                 job_ids: Callable[[], str] = new_job_id) -> None:
        super().__init__()
        self.broker = broker
        self.moa_layers = layers
        """M for prompts asked from here; None: the device's own default."""
        self.moa_proposers = proposers
        self.clock = clock
        self.state = MeshState()
        self.feed = MeshFeed(self, broker, credentials, clock) if live else None
        connect = submitter or (lambda: SubmitClient(broker, None, credentials))
        self.asker = Asker(self, connect, answer_timeout_s)
        self.job_ids = job_ids
        self._drawn = (-1, 0.0)
        self._drawing = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield DevicesTable(id="devices")
        with Horizontal(id="middle"):
            yield JobsPanel(id="jobs")
            yield StabilityPanel(id="stability")
        yield AskPanel(id="ask")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#devices").border_title = "Devices"
        self.query_one("#stability").border_title = "Stability  ρ = ((k+1)M+1)·λ·α_max"
        self.query_one("#ask").border_title = "Ask"
        if self.feed is not None:
            self.feed.start()
        self.set_interval(self.REFRESH_S, self.refresh_views)
        await self.refresh_views(force=True)

    def on_unmount(self) -> None:
        if self.feed is not None:
            self.feed.stop(timeout_s=1.0)
        self.asker.close()

    # -- mesh messages (posted from the feed's threads) ---------------------------------
    def on_status_received(self, message: StatusReceived) -> None:
        self.state.apply_status(message.status, message.received_at, message.retained)

    def on_progress_received(self, message: ProgressReceived) -> None:
        self.state.apply_progress(message.progress, message.received_at)

    def on_identity_received(self, message: IdentityReceived) -> None:
        self.state.set_identity(message.device)

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        self.state.set_connection(message.connected, message.detail)

    def on_answer_received(self, message: AnswerReceived) -> None:
        self.query_one(AskPanel).answered(message.answer)

    def on_submit_failed(self, message: SubmitFailed) -> None:
        self.query_one(AskPanel).failed(message.job_id, message.error)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        event.input.clear()
        job_id = self.job_ids()
        self.state.mark_mine(job_id)
        self.query_one(AskPanel).pending(job_id, prompt)
        self.asker.ask(prompt, job_id, self.moa_layers, self.moa_proposers)

    # -- drawing ------------------------------------------------------------------------
    async def refresh_views(self, force: bool = False) -> None:
        """Redraw from state if it changed (or a second went by: ages move on)."""
        revision, drawn_at = self._drawn
        if self._drawing or (not force and revision == self.state.revision
                             and time.monotonic() - drawn_at < self.TICK_S):
            return
        self._drawing = True
        try:
            await self._draw()
        finally:
            self._drawing = False

    @property
    def drawn_revision(self) -> int:
        """The state revision the views were last drawn from."""
        return self._drawn[0]

    async def _draw(self) -> None:
        self._drawn = (self.state.revision, time.monotonic())
        now = self.clock()
        state = self.state
        try:
            devices = state.device_list()
            self.query_one(DevicesTable).show(devices, now)
            _retitle(self.query_one("#devices"), subtitle=f"{state.online_count()} of {len(devices)} online")
            self.query_one(StabilityPanel).show(state.figures())
            self._show_config()
            link = "connected" if state.connected else (state.connection_detail or "connecting…")
            self.sub_title = f"{state.identity or 'no agent yet'} @ {self.broker} · {link}"
            jobs = state.jobs.ordered()
            running = state.jobs.active()
            _retitle(self.query_one("#jobs"), title=f"Jobs  {running} running · {len(jobs) - running} recent")
            await self.query_one(JobsPanel).show(jobs, now)
        except NoMatches:  # the screen is closing under a last timer tick
            return

    # -- actions ------------------------------------------------------------------------
    def action_ask(self) -> None:
        self.query_one("#prompt", Input).focus()

    def action_layers(self) -> None:
        self.moa_layers = _cycle(self.moa_layers, 3)
        self._show_config()

    def action_proposers(self) -> None:
        self.moa_proposers = _cycle(self.moa_proposers, 4)
        self._show_config()

    def _show_config(self) -> None:
        local = self.state.devices.get(self.state.identity)
        defaults = (local.status.layers, local.status.proposers) if local is not None else None
        self.query_one(AskPanel).set_config(self.moa_layers, self.moa_proposers, defaults, self.state.identity)

    async def action_clear_finished(self) -> None:
        self.state.clear_finished()
        await self.refresh_views(force=True)


def _retitle(widget: Widget, title: str | None = None, subtitle: str | None = None) -> None:
    """Set border titles only when they change (each assignment repaints the border)."""
    if title is not None and widget.border_title != title:
        widget.border_title = title
    if subtitle is not None and widget.border_subtitle != subtitle:
        widget.border_subtitle = subtitle


def _cycle(value: int | None, top: int) -> int | None:
    """None (the device's default), 0, 1, ..., top, then None again."""
    if value is None:
        return 0
    return None if value >= top else value + 1


def make_app(broker: BrokerAddress | str = "127.0.0.1:1883", credentials: Credentials = ANONYMOUS,
             layers: int | None = None, proposers: int | None = None, *, clock: Clock = time.time, live: bool = True,
             submitter: Callable[[], Submitter] | None = None, answer_timeout_s: float = 300.0,
             job_ids: Callable[[], str] = new_job_id) -> MeshApp:
    """The app the CLI runs; tests pass live=False and a frozen clock to inject state themselves."""
    address = broker if isinstance(broker, BrokerAddress) else BrokerAddress.parse(broker)
    return MeshApp(address, credentials, layers, proposers, clock=clock, live=live, submitter=submitter,
                   answer_timeout_s=answer_timeout_s, job_ids=job_ids)
