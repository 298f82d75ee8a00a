"""The jobs panel: a card per active or recent job, a progress bar per layer."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Horizontal, VerticalScroll
from textual.widgets import Label, ProgressBar, Static

from edge_agent.tui.jobs import JobState, LayerState
from edge_agent.tui.widgets import cells

MAX_CARDS = 16
"""Cards shown at most (newest first): each is a dozen widgets to lay out."""
MARK = {"running": ("▶", "bold cyan"), "done": ("✓", "bold green"), "failed": ("✗", "bold red")}


def headline(job: JobState, now: float) -> Text:
    mark, style = MARK.get(job.state, ("?", ""))
    text = Text.assemble((mark, style), " ", (job.job_id[:8], "bold"), f"  {job.origin}",
                         (f"  M={job.layers} k={job.proposers}", "dim"), no_wrap=True, overflow="ellipsis")
    at_least = "" if job.from_start else "≥ "
    if job.state == "running":
        step = "final" if job.layer == job.layers + 1 else f"layer {job.layer}/{job.layers}"
        text.append(f"  {step if job.layer else 'accepted'}  {at_least}{cells.seconds(job.elapsed(now))}")
    elif job.state == "done":
        text.append(f"  latency {cells.seconds(job.elapsed(now))}", style="green")
    elif job.from_start:
        text.append(f"  failed after {cells.seconds(job.elapsed(now))}: {job.detail}", style="red")
    else:
        text.append(f"  failed: {job.detail}", style="red")
    if job.degraded:
        text.append("  DEGRADED", style="bold black on yellow")
    if job.mine:
        text.append("  ★ yours", style="magenta")
    return text


class LayerBar(Horizontal):
    """One step of a job: 'L2 2/3' and a bar of answers in over answers expected."""

    def __init__(self, number: int, final: bool, step: LayerState, current: bool) -> None:
        super().__init__(classes="layer")
        self.step_number = number
        self.final = final
        self._initial = (step, current)
        self._shown: tuple[int, int, bool, bool] | None = None

    def compose(self) -> ComposeResult:
        yield Label(classes="layer-label")
        yield ProgressBar(show_eta=False, show_percentage=False)

    def on_mount(self) -> None:
        self.show(*self._initial)

    def show(self, step: LayerState, current: bool) -> None:
        shown = (step.answers, step.expected, step.done, current)
        if shown == self._shown:
            return
        self._shown = shown
        name = "agg" if self.final else f"L{self.step_number}"
        label = self.query_one(Label)
        if step.done and not step.answers:  # finished before we started listening
            label.update(f"{name} ✓", layout=False)
            self.query_one(ProgressBar).update(total=1, progress=1)
        else:
            label.update(f"{name} {step.answers}/{step.expected}", layout=False)
            self.query_one(ProgressBar).update(total=step.expected, progress=step.answers)
        self.set_class(step.done, "-done")
        self.set_class(current and not step.done, "-current")

    def answers(self) -> tuple[int, int] | None:
        """(answers in, expected) as the bar shows them; None before the bar is mounted."""
        bars = self.query(ProgressBar)
        if not bars:
            return None
        return int(bars.first().progress), int(bars.first().total or 0)


class JobCard(Container):
    """A job's headline and its steps; built filled in, then updated in place."""

    def __init__(self, job: JobState, now: float) -> None:
        super().__init__(classes="job")
        self.job_id = job.job_id
        self._initial = job
        self._headline = headline(job, now)

    def compose(self) -> ComposeResult:
        job = self._initial
        yield Static(self._headline, classes="job-head")
        with Container(classes="layers"):
            for n, step in job.progress():
                yield LayerBar(n, n == job.layers + 1, step, _is_current(job, n))
        self._mark(job)

    def show(self, job: JobState, now: float) -> None:
        head = headline(job, now)
        if head != self._headline:
            self._headline = head
            self.query_one(".job-head", Static).update(head, layout=False)  # one line, always
        for bar, (n, step) in zip(self.query(LayerBar), job.progress(), strict=True):
            bar.show(step, _is_current(job, n))
        self._mark(job)

    def bars(self) -> list[LayerBar]:
        return list(self.query(LayerBar))

    def _mark(self, job: JobState) -> None:
        for state in MARK:
            self.set_class(job.state == state, f"-{state}")
        self.set_class(job.degraded, "-degraded")


def _is_current(job: JobState, step: int) -> bool:
    return step == job.layer and job.state == "running"


class JobsPanel(VerticalScroll):
    """Newest job on top; cards are added, updated and removed to match the state."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cards: dict[str, JobCard] = {}

    def compose(self) -> ComposeResult:
        yield Static("No job seen yet: submit one with /", classes="empty")

    async def show(self, jobs: list[JobState], now: float) -> None:
        jobs = jobs[:MAX_CARDS]
        wanted = {job.job_id for job in jobs}
        for job_id in [j for j in self.cards if j not in wanted]:
            await self.cards.pop(job_id).remove()
        for job in reversed(jobs):  # oldest first, each new card on top
            card = self.cards.get(job.job_id)
            if card is None:
                card = self.cards[job.job_id] = JobCard(job, now)
                await self.mount(card, before=0)
            else:
                card.show(job, now)
        self.query_one(".empty", Static).display = not jobs
