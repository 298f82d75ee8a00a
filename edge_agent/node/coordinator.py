"""The per-job state machine of distributed Mixture-of-Agents, run at the origin.

Layer m (1..M): the origin and k peers each answer (layer 1: the prompt
alone; later layers: the prompt with the numbered answers of layer m-1).
Layer M+1: the origin alone aggregates layer M. With M = 0 the origin simply
answers: (k+1)·M + 1 inferences in all.

Every transition is written to the store together with the messages it
sends, so a restart resumes each job where it stood. A remote task that
misses its deadline, fails, or whose device goes offline is re-sent once to
another live peer; after that the layer goes on without it and the job is
marked degraded.

Admission control is edge_agent/node/admission.py; the coordinator applies its decision.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.engine.prompts import TokenCounter, WhitespaceCounter, check_fits
from edge_agent.errors import ModelError
from edge_agent.node import admission
from edge_agent.node.estimates import Estimator
from edge_agent.node.peers import PeerTable
from edge_agent.node.store import DispatchRow, JobRow, Store
from edge_agent.theory.peerchoice import POLICIES, Policy, choose_peers
from edge_agent.theory.stability import inferences_per_prompt
from edge_agent.wire import topics
from edge_agent.wire.messages import (
    Answer,
    AnswerReason,
    Inference,
    Progress,
    ProgressEvent,
    Result,
    Role,
    Status,
    Submit,
    Task,
    Turn,
    new_secret,
)

log = logging.getLogger(__name__)


def task_id(job_id: str, layer: int, device: str, attempt: int) -> str:
    return f"{job_id}/{layer}/{device}/{attempt}"


# Error answers a program must tell apart (Answer.reason): the request's own fault,
# or admission control's refusal; anything else is the mesh failing to answer.
INVALID_PREFIXES = ("prompt ", "the conversation ")
OVERLOADED_PREFIX = "mesh utilisation"


def failure_reason(error: str) -> AnswerReason:
    if error.startswith(OVERLOADED_PREFIX):
        return "overloaded"
    return "invalid" if error.startswith(INVALID_PREFIXES) else "failed"


def turns_of(messages: list[Turn]) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in messages]


class Coordinator:
    def __init__(
        self,
        cfg: AgentConfig,
        store: Store,
        peers: PeerTable,
        flush: Callable[[], None],
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
        self._flush = flush
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

    # -- entry points -----------------------------------------------------------------
    def accept(self, submit: Submit) -> None:
        """A local user's prompt: admit it, record the job, then start its first layer."""
        with self._lock:
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
            error = self._invalid(submit)
            layers, proposers = submit.layers, submit.proposers
            self.store.save_submit(submit)
            if not error:
                layers, proposers, error = self._admit(layers, proposers, notes)
            self.store.create_job(submit, layers, proposers, policy, notes)
            job = self._job(submit.job_id)
            self._emit(job, "accepted")
            if self._estimator is not None:
                self._estimator.record_arrival(0 if error else inferences_per_prompt(layers, proposers))
            if error:
                self._finish(job, ok=False, error=error)
                return
            self._start_layer(job, 1)

    def on_result(self, result: Result) -> None:
        with self._lock:
            row = self.store.record_result(result)
            if row is None:
                log.debug("duplicate or late result %s ignored", result.task_id)
                return
            job = self._job(row.job_id)
            if job.state != "running":
                return
            answers_in = sum(d.state == "done" for d in self._current(job, row.layer))
            self._emit(job, "answer", layer=row.layer, answers_in=answers_in,
                       expected=self._slots(job, row.layer), device=row.device, seconds=result.seconds,
                       detail="" if result.ok else result.error)
            if not result.ok:
                self._lost(job, row, f"{row.device} failed: {result.error}")
            self._maybe_advance(job, row.layer)

    def tick(self, now: float | None = None) -> None:
        """Deadlines and departed peers: re-send or skip what will not come back.

        now is on the monotonic clock."""
        now = self._monotonic() if now is None else now
        with self._lock:
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
                    self._maybe_advance(self._job(d.job_id), d.layer)

    def resume(self) -> None:
        """After a restart, push every running job on from where the store says it stood.

        Pending tasks are published again: the local broker acknowledged them but may
        not have saved them before a power cut (receivers drop duplicates). A loss that
        was recorded but not yet handled when the agent died is handled now.
        """
        with self._lock:
            for job in self.store.jobs("running"):
                if job.layer == 0:
                    self._start_layer(job, 1)
                    continue
                for d in self._current(job, job.layer):
                    if d.state == "pending":
                        references = [] if d.layer == 1 else self._answers(job, d.layer - 1)
                        _, topic, payload = self._task(job, d.layer, d.slot, d.device, d.attempt, d.role,
                                                       references, secret=d.secret)
                        self.store.add_outbox(topic, payload)
                    elif d.state in ("abandoned", "failed") and d.attempt == 0 and d.device != self.device:
                        self._lost(job, d, d.error or f"{d.device} lost before a restart")
                self._flush()
                self._maybe_advance(job, job.layer)

    def resend_answers(self, since: float) -> int:
        """Publish again the answers of jobs finished at or after since: a broker that died
        before saving them lost them, and clients deduplicate by job id."""
        with self._lock:
            finished = self.store.jobs_finished_since(since)
            for job in finished:
                self._resend_answer(job)
            return len(finished)

    # -- admission --------------------------------------------------------------------
    def _invalid(self, submit: Submit) -> str:
        if len(submit.prompt) > self.cfg.max_prompt_chars:
            return (f"prompt of {len(submit.prompt)} characters exceeds this device's limit of "
                    f"{self.cfg.max_prompt_chars} (max_prompt_chars)")
        if not submit.prompt.strip():
            return "prompt is empty"
        if submit.messages and submit.messages[-1].role != "user":
            return "the conversation must end with a user message"
        turns = turns_of(submit.messages) or [("user", submit.prompt)]
        try:
            if submit.layers:
                check_fits(turns, 0, "", self.cfg.n_ctx, self.cfg.max_tokens, self._counter)
            check_fits(turns, (submit.proposers + 1) if submit.layers else 0, self.cfg.aggregation_instruction,
                       self.cfg.n_ctx, self._final_budget(submit), self._counter)
        except ModelError as err:
            return str(err)
        return ""

    def _final_budget(self, submit: Submit | None) -> int:
        return (submit.max_tokens if submit and submit.max_tokens else 0) or self.cfg.final_max_tokens

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
    def _start_layer(self, job: JobRow, layer: int) -> None:
        final = layer == job.layers + 1
        role: Role = "aggregate" if final else "propose"
        references = [] if layer == 1 else self._answers(job, layer - 1)
        chosen: list[str] = []
        if not final:
            chosen = choose_peers(self.peers.loads(), job.proposers, self._policy(job), self._rng,
                                  exclude={self.device})
            if len(chosen) < job.proposers:
                job = self._note(job, f"layer {layer}: {len(chosen)} of {job.proposers} peers live")
        devices = [self.device, *chosen]
        sends = [self._task(job, layer, slot, device, 0, role, references)
                 for slot, device in enumerate(devices)]
        if self.store.dispatch(job.job_id, job.layer, layer, sends):
            self._flush()
            self._emit(job, "dispatched", layer=layer, expected=len(devices), detail=" ".join(devices))

    def _maybe_advance(self, job: JobRow, layer: int) -> None:
        job = self._job(job.job_id)
        if job.state != "running" or job.layer != layer:
            return
        current = self._current(job, layer)
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
        self._start_layer(job, layer + 1)

    def _lost(self, job: JobRow, lost: DispatchRow, reason: str) -> None:
        """Replace a lost remote answer once; otherwise go on without it, degraded."""
        if lost.device == self.device:
            self._note(job, f"layer {lost.layer}: {reason}", degraded=True)
            return
        if lost.attempt == 0:
            used = {d.device for d in self.store.dispatches(job.job_id, lost.layer)} | {self.device}
            replacement = choose_peers(self.peers.loads(), 1, self._policy(job), self._rng, exclude=used)
            if replacement:
                references = [] if lost.layer == 1 else self._answers(job, lost.layer - 1)
                send = self._task(job, lost.layer, lost.slot, replacement[0], 1, lost.role, references)
                self.store.dispatch(job.job_id, lost.layer, lost.layer, [send])
                self._flush()
                job = self._note(job, f"layer {lost.layer}: {reason}; re-sent to {replacement[0]}")
                self._emit(job, "redispatched", layer=lost.layer, device=replacement[0], detail=reason)
                return
        self._note(job, f"layer {lost.layer}: {reason}; went on without it", degraded=True)
        self._emit(self._job(job.job_id), "skipped", layer=lost.layer, device=lost.device, detail=reason)

    # -- finishing --------------------------------------------------------------------
    def _finish(self, job: JobRow, ok: bool, answer: str = "", error: str = "") -> None:
        job = self._job(job.job_id)
        # Degraded is read off the record itself (a slot whose last attempt did not answer),
        # so it holds even if the agent died between recording a loss and noting it.
        degraded = job.degraded or any(
            d.state != "done" for layer in range(1, job.layer + 1) for d in self._current(job, layer))
        if degraded != job.degraded:
            self.store.update_job(job.job_id, degraded=int(degraded))
            job = self._job(job.job_id)
        message = self._answer_message(job, ok, answer, error)
        if self.store.finish_job(job.job_id, "done" if ok else "failed", answer, error, job.degraded,
                                 job.notes, self._answer_topic(job), message.encode()):
            self._flush()
            done = self._job(job.job_id)
            self._emit(done, "done" if ok else "failed", layer=job.layers + 1, seconds=message.latency_s,
                       detail=error)

    def _resend_answer(self, job: JobRow) -> None:
        message = self._answer_message(job, job.state == "done", job.answer, job.error)
        self.store.add_outbox(self._answer_topic(job), message.encode())
        self._flush()

    def _answer_topic(self, job: JobRow) -> str:
        return topics.answer(job.reply_to or self.device, job.job_id)

    def _answer_message(self, job: JobRow, ok: bool, answer: str, error: str) -> Answer:
        inferences = [
            Inference(layer=d.layer, role=d.role, device=d.device, seconds=d.seconds,
                      prompt_tokens=d.prompt_tokens, completion_tokens=d.completion_tokens,
                      queue_wait_s=d.queue_wait_s, truncated=d.truncated)
            for d in self.store.dispatches(job.job_id) if d.state == "done"
        ]
        finished = job.finished_at or self._clock()
        return Answer(job_id=job.job_id, origin=self.device, ok=ok, answer=answer, error=error,
                      layers=job.layers, proposers=job.proposers, degraded=job.degraded,
                      notes=job.notes, latency_s=round(finished - job.created_at, 3),
                      inferences=inferences, secret=job.secret, reason="" if ok else failure_reason(error))

    # -- helpers ----------------------------------------------------------------------
    def _task(self, job: JobRow, layer: int, slot: int, device: str, attempt: int, role: Role,
              references: list[str], secret: str | None = None) -> tuple[DispatchRow, str, bytes]:
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
        submit = self.store.submit_of(job.job_id)
        final = layer == job.layers + 1
        # The final answer has its own budget and alone is streamed, to the client's board.
        task = Task(task_id=tid, job_id=job.job_id, origin=self.device, layer=layer, role=role,
                    prompt=job.prompt, references=references,
                    instruction=self.cfg.aggregation_instruction if references else "",
                    max_tokens=self._final_budget(submit) if final else self.cfg.max_tokens, created_at=now,
                    secret=secret, messages=submit.messages if submit else [],
                    temperature=submit.temperature if submit else None,
                    stream_to=(job.reply_to or self.device) if final and submit and submit.stream else "")
        return row, topics.task(device), task.encode()

    def _current(self, job: JobRow, layer: int) -> list[DispatchRow]:
        """The live attempt of each slot: the latest one."""
        latest: dict[int, DispatchRow] = {}
        for d in self.store.dispatches(job.job_id, layer):
            latest[d.slot] = d
        return [latest[slot] for slot in sorted(latest)]

    def _answers(self, job: JobRow, layer: int) -> list[str]:
        return [d.text for d in self._current(job, layer) if d.state == "done"]

    def _slots(self, job: JobRow, layer: int) -> int:
        return len({d.slot for d in self.store.dispatches(job.job_id, layer)})

    def _policy(self, job: JobRow) -> Policy:
        return next((p for p in POLICIES if p == job.policy), self.cfg.policy)

    def _note(self, job: JobRow, note: str, degraded: bool = False) -> JobRow:
        log.info("job %s: %s", job.job_id, note)
        fresh = self._job(job.job_id)
        self.store.update_job(job.job_id, notes=[*fresh.notes, note], degraded=int(fresh.degraded or degraded))
        return self._job(job.job_id)

    def _job(self, job_id: str) -> JobRow:
        job = self.store.job(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _emit(self, job: JobRow, event: ProgressEvent, **fields: Any) -> None:
        self._progress(Progress(job_id=job.job_id, origin=self.device, event=event,
                                layers=job.layers, proposers=job.proposers, degraded=job.degraded,
                                ts=round(self._clock(), 3), **fields))
