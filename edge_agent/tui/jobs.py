"""Job progress folded from progress events: pure, no I/O, time passed in.

A job with M layers and k proposers has M+1 steps: layers 1..M, each
expecting k+1 answers (fewer when fewer peers were live: the `expected` of
its dispatched and answer events), then the origin's final aggregation,
which expects one. Events may repeat or arrive late; every update only
moves forward.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge_agent.wire.messages import Progress

FINISHED = ("done", "failed")


@dataclass
class LayerState:
    expected: int
    answers: int = 0
    done: bool = False


@dataclass
class JobState:
    job_id: str
    origin: str
    layers: int
    proposers: int
    first_seen: float
    state: str = "running"
    """running, done or failed."""
    layer: int = 0
    """The step in progress (0: accepted, not yet dispatched)."""
    steps: dict[int, LayerState] = field(default_factory=dict)
    degraded: bool = False
    latency_s: float | None = None
    finished_at: float | None = None
    detail: str = ""
    mine: bool = False
    """Submitted from this TUI."""
    from_start: bool = True
    """False when first heard of mid-way: its elapsed time is then a lower bound."""

    def step(self, layer: int) -> LayerState:
        if layer not in self.steps:
            self.steps[layer] = LayerState(1 if layer == self.layers + 1 else self.proposers + 1)
        return self.steps[layer]

    def progress(self) -> list[tuple[int, LayerState]]:
        """Every step 1..M+1 in order, with defaults for those not reached yet."""
        return [(n, self.step(n)) for n in range(1, self.layers + 2)]

    def elapsed(self, now: float) -> float:
        if self.latency_s is not None:
            return self.latency_s
        end = self.finished_at if self.finished_at is not None else now
        return max(0.0, end - self.first_seen)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class JobTracker:
    def __init__(self, keep_finished: int = 12, keep_total: int = 40) -> None:
        self.keep_finished = keep_finished
        self.keep_total = keep_total
        self.jobs: dict[str, JobState] = {}
        self._forgotten: deque[str] = deque(maxlen=256)
        self._mine: set[str] = set()

    def mark_mine(self, job_id: str) -> None:
        self._mine.add(job_id)
        if job_id in self.jobs:
            self.jobs[job_id].mine = True

    def apply(self, p: Progress, now: float) -> JobState | None:
        if p.job_id in self._forgotten:
            return None
        job = self.jobs.get(p.job_id)
        if job is None:
            job = JobState(p.job_id, p.origin, p.layers, p.proposers, now, mine=p.job_id in self._mine,
                           from_start=p.event == "accepted")
            self.jobs[p.job_id] = job
        job.degraded = job.degraded or p.degraded
        if job.finished:
            return job
        if p.event in ("dispatched", "answer", "layer-done") and p.layer >= 1:
            self._advance(job, p.layer)
            step = job.step(p.layer)
            if p.expected:
                step.expected = p.expected
            step.answers = max(step.answers, p.answers_in)
            step.done = step.done or p.event == "layer-done"
        elif p.event in FINISHED:
            job.state = p.event
            job.finished_at = now
            job.detail = p.detail
            if p.event == "done":
                self._advance(job, job.layers + 1)
                final = job.step(job.layers + 1)
                final.answers, final.done = final.expected, True
                job.latency_s = p.seconds or None
        self._evict()
        return job

    def _advance(self, job: JobState, layer: int) -> None:
        """Reaching step `layer` means every earlier step is complete."""
        for earlier in range(1, layer):
            job.step(earlier).done = True
        job.layer = max(job.layer, layer)

    def clear_finished(self) -> int:
        gone = [j for j in self.jobs.values() if j.finished]
        for job in gone:
            self._forget(job.job_id)
        return len(gone)

    def ordered(self) -> list[JobState]:
        """Newest first."""
        return sorted(self.jobs.values(), key=lambda j: j.first_seen, reverse=True)

    def active(self) -> int:
        return sum(not j.finished for j in self.jobs.values())

    def _evict(self) -> None:
        finished = [j for j in self.ordered() if j.finished]
        for job in finished[self.keep_finished:]:
            self._forget(job.job_id)
        for job in self.ordered()[self.keep_total:]:
            self._forget(job.job_id)

    def _forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        self._forgotten.append(job_id)
