"""The per-job state machine of distributed Mixture-of-Agents, run at the origin.

Layer m (1..M): the origin and k peers each answer (layer 1: the prompt
alone; later layers: the prompt with the numbered answers of layer m-1).
Layer M+1: the origin alone aggregates layer M. With M = 0 the origin simply
answers: (k+1)·M + 1 inferences in all.

Each entry point is one step: one store transaction holding every transition it makes and
every message it sends, so a restart resumes each job where it stood; progress events go out
once the step is committed. The origin's own tasks go straight into its own queue, and their
results straight back here, in the same transactions. A remote task that misses its deadline,
fails, or whose device goes offline is re-sent once to another live peer; after that the layer
goes on without it and the job is marked degraded.

Whether a prompt can run, and with which (M, k), is decided by the pure functions of
edge_agent/node/admission.py; the answer message is built by edge_agent/node/answers.py.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.engine.prompts import TokenCounter, WhitespaceCounter
from edge_agent.node import admission
from edge_agent.node.answers import answer_message
from edge_agent.node.estimates import Estimator
from edge_agent.node.jobs import DispatchRow, JobRow, Send
from edge_agent.node.peers import PeerTable
from edge_agent.node.store import Store
from edge_agent.theory.peerchoice import POLICIES, Policy, choose_peers
from edge_agent.theory.stability import inferences_per_prompt
from edge_agent.wire import topics
from edge_agent.wire.messages import Progress, ProgressEvent, Result, Role, Status, Submit, Task, new_secret

log = logging.getLogger(__name__)


def task_id(job_id: str, layer: int, device: str, attempt: int) -> str:
    return f"{job_id}/{layer}/{device}/{attempt}"


class Coordinator:
    def __init__(
        self,
        cfg: AgentConfig,
        store: Store,
        peers: PeerTable,
        progress: Callable[[Progress], None],
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        estimator: Estimator | None = None,
        link_settled: Callable[[], bool] = lambda: True,
        counter: TokenCounter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.store = store
        self.peers = peers
        self._progress = progress
        self._rng = rng or random.Random()
        self._clock = clock
        self._estimator = estimator
        self._link_settled = link_settled
        # Counts a conversation's tokens to refuse up front one that cannot fit.
        self._counter = counter or WhitespaceCounter()
        self._monotonic = monotonic
        # Deadlines run on the monotonic clock: a board without an RTC steps its wall clock at
        # boot, and that must neither fire a deadline early nor keep one from ever firing. The
        # wall-clock deadline in the store is for the record; after a restart each pending task
        # gets its whole allowance again.
        self._due: dict[str, float] = {}
        self._lock = threading.RLock()
        self._events: list[Progress] = []

    @contextmanager
    def _step(self, durable: bool = True) -> Iterator[None]:
        """One transaction; the progress events it made are published once it is committed.
        durable=False: a restart repairs the step if it is lost, but not the messages it sends,
        which wait for the disk all the same."""
        with self._lock:
            self._events = []
            try:
                with self.store.transaction(durable, sync_if_sending=True):
                    yield
                events = self._events
            finally:
                self._events = []
            for event in events:
                self._progress(event)

    # -- entry points -----------------------------------------------------------------
    def accept(self, submit: Submit) -> None:
        """A local user's prompt: admit it, record the job, then start its first layer."""
        with self._step():
            existing = self.store.job(submit.job_id)
            if existing is not None:
                if existing.state != "running":
                    self._resend_answer(existing)
                return
            policy = submit.policy or self.cfg.policy
            notes: list[str] = []
            if policy not in POLICIES:
                notes.append(f"unknown peer policy {policy!r}; used {self.cfg.policy}")
                policy = self.cfg.policy
            error = admission.refusal(submit, self.cfg, self._counter, self.store.queue_depth())
            layers, proposers = submit.layers, submit.proposers
            if not error:
                layers, proposers, error = self._admit(layers, proposers, notes)
            job = self.store.create_job(submit, layers, proposers, policy, notes)
            if job is None:
                return
            self._emit(job, "accepted")
            if self._estimator is not None:
                self._estimator.record_arrival(0 if error else inferences_per_prompt(layers, proposers))
            if error:
                self._finish(job, ok=False, error=error)
                return
            self._start_layer(job, 1, submit)

    def on_result(self, result: Result) -> None:
        """A result from a peer's queue, or (through finish_own) from this device's."""
        with self._step():
            self._take(result)

    def finish_own(self, task_id: str, result: Result) -> None:
        """A task of this device's own job is done: keep it as done in the queue and take its
        result, in one transaction (it never leaves the device). Lost in a power cut, the task
        runs again, as a peer's would; only what the step sends waits for the disk, and the
        final answer, which always sends the job's answer, is durable from the start."""
        with self._step(durable=result.role == "aggregate"):
            self.store.finish_task(task_id, "", result.encode())
            self._take(result)

    def tick(self, now: float | None = None) -> None:
        """Deadlines and departed peers: re-send or skip what will not come back.

        now is on the monotonic clock."""
        now = self._monotonic() if now is None else now
        with self._step():
            pending = self.store.pending_dispatches()
            live = {d.task_id for d in pending}
            for task_id in [t for t in self._due if t not in live]:
                del self._due[task_id]
            for d in pending:
                if d.device == self.device:
                    continue
                allowance = (d.deadline - d.sent_at) if d.deadline is not None else self.cfg.task_timeout_s
                if now > self._due.setdefault(d.task_id, now + allowance):
                    reason = f"{d.device} missed its deadline"
                elif self._link_settled() and not self.peers.is_live(d.device):
                    # Only trusted while our own broker link is up and has been long enough
                    # to hear heartbeats: otherwise every peer merely looks silent.
                    reason = f"{d.device} went offline"
                else:
                    continue
                if not self.store.abandon(d.task_id, reason):
                    continue
                job = self._job(d.job_id)
                if job.state == "running":
                    self._lost(job, d, reason)
                    self._maybe_advance(d.job_id, d.layer)

    def resume(self) -> None:
        """After a restart, push every running job on from where the store says it stood.

        Pending remote tasks are published again: the local broker acknowledged them but may
        not have saved them before a power cut (receivers drop duplicates); the device's own
        are in its queue. A loss that was recorded but not yet handled when the agent died is
        handled now.
        """
        with self._step():
            for job in self.store.jobs("running"):
                submit = self.store.submit_of(job.job_id)
                if job.layer == 0:
                    self._start_layer(job, 1, submit)
                    continue
                for d in self._current(job.job_id, job.layer):
                    if d.state == "pending" and d.device != self.device:
                        references = [] if d.layer == 1 else self._answers(job.job_id, d.layer - 1)
                        _, task = self._task(job, submit, d.layer, d.slot, d.device, d.attempt, d.role,
                                             references, secret=d.secret)
                        self.store.add_outbox(topics.task(d.device), task.encode())
                    elif d.state in ("abandoned", "failed") and d.attempt == 0 and d.device != self.device:
                        self._lost(job, d, d.error or f"{d.device} lost before a restart")
                self._maybe_advance(job.job_id, job.layer)

    def resend_answers(self, since: float) -> int:
        """Publish again the answers of jobs finished at or after since: a broker that died
        before saving them lost them, and clients deduplicate by job id."""
        with self._step():
            finished = self.store.jobs_finished_since(since)
            for job in finished:
                self._resend_answer(job)
            return len(finished)

    # -- admission --------------------------------------------------------------------
    def _admit(self, layers: int, proposers: int, notes: list[str]) -> tuple[int, int, str]:
        """The (M, k) to run and an error if refused; a decision is appended to notes."""
        statuses = self.peers.live()
        if self._estimator is not None:
            statuses.append(Status(device=self.device, online=True, alpha=self._estimator.alpha,
                                   lam=self._estimator.lam()))
        decision = admission.decide(layers, proposers, statuses, self.cfg.admission, self.cfg.admission_threshold)
        if decision.note:
            notes.append(decision.note)
        return decision.layers, decision.proposers, decision.error

    # -- layers -----------------------------------------------------------------------
    def _take(self, result: Result) -> None:
        row = self.store.record_result(result)
        if row is None:
            log.debug("duplicate or late result %s ignored", result.task_id)
            return
        job = self._job(row.job_id)
        if job.state != "running":
            return
        current = self._current(job.job_id, row.layer)
        self._emit(job, "answer", layer=row.layer, answers_in=sum(d.state == "done" for d in current),
                   expected=len(current), device=row.device, seconds=result.seconds,
                   detail="" if result.ok else result.error)
        if not result.ok:
            self._lost(job, row, f"{row.device} failed: {result.error}")
        self._maybe_advance(job.job_id, row.layer)

    def _start_layer(self, job: JobRow, layer: int, submit: Submit | None) -> None:
        final = layer == job.layers + 1
        role: Role = "aggregate" if final else "propose"
        references = [] if layer == 1 else self._answers(job.job_id, layer - 1)
        chosen: list[str] = []
        if not final:
            chosen = choose_peers(self.peers.loads(), job.proposers, self._policy(job), self._rng,
                                  exclude={self.device})
            if len(chosen) < job.proposers:
                job = self._note(job, f"layer {layer}: {len(chosen)} of {job.proposers} peers live")
        devices = [self.device, *chosen]
        tasks = [self._task(job, submit, layer, slot, device, 0, role, references)
                 for slot, device in enumerate(devices)]
        if self._dispatch(job, layer, tasks):
            self._emit(job, "dispatched", layer=layer, expected=len(devices), detail=" ".join(devices))

    def _dispatch(self, job: JobRow, layer: int, tasks: list[tuple[DispatchRow, Task]]) -> bool:
        """Record the tasks; a peer's is published, this device's own goes into its queue."""
        sends: list[Send] = [(row, "" if row.device == self.device else topics.task(row.device), task.encode())
                             for row, task in tasks]
        if not self.store.dispatch(job.job_id, job.layer, layer, sends):
            return False
        for row, task in tasks:
            if row.device == self.device:
                self.store.enqueue(task)
        return True

    def _maybe_advance(self, job_id: str, layer: int) -> None:
        job = self._job(job_id)
        if job.state != "running" or job.layer != layer:
            return
        current = self._current(job_id, layer)
        if any(d.state == "pending" for d in current):
            return
        answers = [d.text for d in current if d.state == "done"]
        if layer == job.layers + 1:
            if answers:
                self._finish(job, ok=True, answer=answers[0])
            else:
                errors = "; ".join(d.error for d in current if d.error) or "no answer"
                self._finish(job, ok=False, error=f"final aggregation failed: {errors}")
            return
        if not answers:
            self._finish(job, ok=False, error=f"layer {layer} produced no answers")
            return
        self._emit(job, "layer-done", layer=layer, answers_in=len(answers), expected=len(current))
        self._start_layer(job, layer + 1, self.store.submit_of(job_id))

    def _lost(self, job: JobRow, lost: DispatchRow, reason: str) -> None:
        """Replace a lost remote answer once; otherwise go on without it, degraded."""
        if lost.device == self.device:
            self._note(job, f"layer {lost.layer}: {reason}", degraded=True)
            return
        if lost.attempt == 0:
            used = {d.device for d in self.store.dispatches(job.job_id, lost.layer)} | {self.device}
            replacement = choose_peers(self.peers.loads(), 1, self._policy(job), self._rng, exclude=used)
            if replacement:
                references = [] if lost.layer == 1 else self._answers(job.job_id, lost.layer - 1)
                resent = self._task(job, self.store.submit_of(job.job_id), lost.layer, lost.slot, replacement[0],
                                    1, lost.role, references)
                self._dispatch(job, lost.layer, [resent])
                job = self._note(job, f"layer {lost.layer}: {reason}; re-sent to {replacement[0]}")
                self._emit(job, "redispatched", layer=lost.layer, device=replacement[0], detail=reason)
                return
        job = self._note(job, f"layer {lost.layer}: {reason}; went on without it", degraded=True)
        self._emit(job, "skipped", layer=lost.layer, device=lost.device, detail=reason)

    # -- finishing --------------------------------------------------------------------
    def _finish(self, job: JobRow, ok: bool, answer: str = "", error: str = "") -> None:
        dispatches = self.store.dispatches(job.job_id)
        # Degraded is read off the record itself (a slot whose last attempt did not answer),
        # so it holds even if the agent died between recording a loss and noting it.
        latest: dict[tuple[int, int], DispatchRow] = {}
        for d in dispatches:
            latest[(d.layer, d.slot)] = d
        degraded = job.degraded or any(d.state != "done" for d in latest.values())
        if degraded != job.degraded:
            job = self.store.update_job(job.job_id, degraded=int(degraded))
        message = answer_message(job, self.device, dispatches, ok, answer, error, self._clock())
        done = self.store.finish_job(job.job_id, "done" if ok else "failed", answer, error, job.degraded,
                                     job.notes, self._answer_topic(job), message.encode())
        if done is not None:
            self._emit(done, "done" if ok else "failed", layer=job.layers + 1, seconds=message.latency_s,
                       detail=error)

    def _resend_answer(self, job: JobRow) -> None:
        message = answer_message(job, self.device, self.store.dispatches(job.job_id), job.state == "done",
                                 job.answer, job.error, job.finished_at or self._clock())
        self.store.queue_answer(self._answer_topic(job), message.encode())

    def _answer_topic(self, job: JobRow) -> str:
        return topics.answer(job.reply_to or self.device, job.job_id)

    # -- helpers ----------------------------------------------------------------------
    def _task(self, job: JobRow, submit: Submit | None, layer: int, slot: int, device: str, attempt: int,
              role: Role, references: list[str], secret: str | None = None) -> tuple[DispatchRow, Task]:
        now = self._clock()
        secret = new_secret() if secret is None else secret
        tid = task_id(job.job_id, layer, device, attempt)
        deadline = None
        if device != self.device:
            # The peer's announced backlog plus this task's own service time, then the margin.
            allowance = self.cfg.task_timeout_s + self.peers.expected_wait(device)
            deadline = now + allowance
            self._due[tid] = self._monotonic() + allowance
        row = DispatchRow(task_id=tid, job_id=job.job_id, layer=layer, slot=slot, role=role,
                          device=device, attempt=attempt, state="pending", sent_at=now, deadline=deadline,
                          secret=secret)
        final = layer == job.layers + 1
        # The final answer has its own budget and alone is streamed, to the client's board.
        task = Task(task_id=tid, job_id=job.job_id, origin=self.device, layer=layer, role=role,
                    prompt=job.prompt, references=references,
                    instruction=self.cfg.aggregation_instruction if references else "",
                    max_tokens=admission.final_budget(submit, self.cfg) if final else self.cfg.max_tokens,
                    created_at=now, secret=secret, messages=submit.messages if submit else [],
                    temperature=submit.temperature if submit else None,
                    stream_to=(job.reply_to or self.device) if final and submit and submit.stream else "")
        return row, task

    def _current(self, job_id: str, layer: int) -> list[DispatchRow]:
        """The live attempt of each slot: the latest one."""
        latest: dict[int, DispatchRow] = {}
        for d in self.store.dispatches(job_id, layer):
            latest[d.slot] = d
        return [latest[slot] for slot in sorted(latest)]

    def _answers(self, job_id: str, layer: int) -> list[str]:
        return [d.text for d in self._current(job_id, layer) if d.state == "done"]

    def _policy(self, job: JobRow) -> Policy:
        return next((p for p in POLICIES if p == job.policy), self.cfg.policy)

    def _note(self, job: JobRow, note: str, degraded: bool = False) -> JobRow:
        log.info("job %s: %s", job.job_id, note)
        fresh = self._job(job.job_id)
        return self.store.update_job(job.job_id, notes=[*fresh.notes, note], degraded=int(fresh.degraded or degraded))

    def _job(self, job_id: str) -> JobRow:
        job = self.store.job(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _emit(self, job: JobRow, event: ProgressEvent, **fields: Any) -> None:
        self._events.append(Progress(job_id=job.job_id, origin=self.device, event=event, layers=job.layers,
                                     proposers=job.proposers, degraded=job.degraded, ts=round(self._clock(), 3),
                                     **fields))
