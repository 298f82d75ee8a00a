"""The one harness for driving a Coordinator by hand: tasks are read from the device's own queue
and the outbox, and results fed back, on clocks the test moves."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from edge_agent.config import load_config
from edge_agent.node.coordinator import Coordinator
from edge_agent.node.estimates import Estimator
from edge_agent.node.peers import PeerTable
from edge_agent.node.store import Store
from edge_agent.wire import topics
from edge_agent.wire.messages import Answer, Message, Result, Status, Submit, Task, decode

PEERS = ("edge-2", "edge-3", "edge-4")


class Harness:
    """Device edge-1 with peers: names (idle, α = 1 s) or name -> (α, λ).

    `now` is both clocks unless `wall_offset` moves the wall clock away from the monotonic one.
    With own_alpha set, the device's own Estimator has measured that α (admission tests).
    """

    def __init__(self, tmp_path: Path, peers: Any = PEERS, own_alpha: float | None = None,
                 **settings: Any) -> None:
        self.cfg = load_config(device="edge-1", data_dir=str(tmp_path), task_timeout_s=30.0, **settings)
        self.store = Store(self.cfg.db_path)
        self.peers = PeerTable("edge-1", stale_s=1e9)
        loads = peers if isinstance(peers, dict) else {name: (1.0, None) for name in peers}
        for name, (alpha, lam) in loads.items():
            self.peers.update(Status(device=name, online=True, queue=0, alpha=alpha, lam=lam), now=0.0)
        self.now = 0.0
        self.wall_offset = 0.0
        self.estimator: Estimator | None = None
        if own_alpha is not None:
            self.estimator = Estimator(self.cfg.layers, self.cfg.proposers, clock=lambda: self.now)
            self.estimator.record_inference(own_alpha, 10)
        self.now = 1000.0  # an agent that has run for longer than the rate window
        self.events: list[Message] = []
        self.coordinator = self.new_coordinator()

    def new_coordinator(self) -> Coordinator:
        """A coordinator on this harness's store and clocks (a second one: the agent restarted)."""
        return Coordinator(self.cfg, self.store, self.peers, progress=self.events.append,
                           rng=random.Random(7), clock=lambda: self.now + self.wall_offset,
                           monotonic=lambda: self.now, estimator=self.estimator)

    def sent(self) -> list[tuple[str, Any]]:
        """Drain the device's own queue, then the outbox: (topic, message) pairs; a task the
        device queued for itself shows as sent to its own task topic."""
        out: list[tuple[str, Any]] = []
        while (claimed := self.store.claim_next()) is not None:
            out.append((topics.task(self.cfg.device), claimed[0]))
        for outbox_id, topic, payload, _ in self.store.outbox():
            kind = Answer if "/answer/" in topic else Task
            out.append((topic, decode(payload, kind)))
            self.store.outbox_done(outbox_id)
        return out

    def answer(self, task: tuple[str, Task], text: str | None = None, ok: bool = True) -> None:
        """The addressee of task answers it, with the task's secret."""
        device = topics.device_of(task[0])
        t = task[1]
        result = Result(task_id=t.task_id, job_id=t.job_id, device=device, layer=t.layer, role=t.role, ok=ok,
                        text=text or f"{device}@{t.layer}", error="" if ok else "boom", seconds=0.5,
                        secret=t.secret)
        if device == self.cfg.device:
            self.coordinator.finish_own(t.task_id, result)
        else:
            self.coordinator.on_result(result)

    def run(self, layers: int, proposers: int, job_id: str = "j") -> tuple[list[tuple[str, Task]], Answer]:
        """Submit, answer every task layer by layer; (the tasks of layer 1, the answer)."""
        self.coordinator.accept(Submit(job_id=job_id, prompt="why?", layers=layers, proposers=proposers))
        first = pending = self.sent()
        while pending and not isinstance(pending[0][1], Answer):
            for task in pending:
                self.answer(task, text="t")
            pending = self.sent()
        (answer,) = [m for _, m in pending]
        return first, answer
