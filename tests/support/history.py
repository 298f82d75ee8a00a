"""Recording every operation of a fault run, and checking the history afterwards.

The vocabulary is that of Jepsen's total-queue checker: of the prompts offered, those whose
submit the broker acknowledged must each come out once. After the run every origin's store is
read too, so a job run twice is caught even if its client saw one answer.

- lost:        acknowledged, and no answer ever came
- duplicated:  answered with two different answers, or aggregated more than once at its origin
- unexpected:  an answer for a job nobody submitted
- recovered:   not acknowledged (the submit's PUBACK never came) and answered all the same
- refused:     answered with an explicit error (admission, queue full, over-long prompt)
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.client.submit import RESUBMIT_FIRST_S, RESUBMIT_MAX_S
from edge_agent.wire import topics
from edge_agent.wire.messages import Answer, Progress, Submit, decode, new_secret


class Board(Protocol):
    """Where a Recorder connects: a board's broker (a local mesh's VirtualDevice, or a lab board)."""

    host: str
    port: int
    device: str


@dataclass
class Op:
    job_id: str
    origin: str
    invoked: float
    acked: bool | None = None
    """True once the broker acknowledged the submit, False if it did not; None while unknown."""
    answers: list[tuple[float, Answer]] = field(default_factory=list)
    accepted: bool = False
    """The origin said it holds the job (its "accepted" progress event)."""
    payload: bytes = b""
    resend_at: float = 0.0
    pause: float = RESUBMIT_FIRST_S


@dataclass(frozen=True)
class Verdict:
    offered: int
    acknowledged: int
    answered: int
    lost: list[str]
    duplicated: list[str]
    unexpected: list[str]
    recovered: list[str]
    refused: list[str]
    latencies: list[float]

    @property
    def valid(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def summary(self) -> str:
        return (f"offered {self.offered}, acknowledged {self.acknowledged}, answered {self.answered}, "
                f"lost {len(self.lost)}, duplicated {len(self.duplicated)}, unexpected {len(self.unexpected)}, "
                f"recovered {len(self.recovered)}, refused {len(self.refused)}")


class Recorder:
    """A client of one board's broker that offers prompts to any device and records everything.

    Like `edge-agent submit`, it publishes a submit again (backing off) until its origin accepts
    the job: the broker's acknowledgement alone does not put it in the origin's store.

    Answers come back to this board (reply_to), authenticated by each submit's secret. On a
    board whose broker asks for a login, give username and password; `where` is a context in
    which the connection is made (a lab board's network namespace, say)."""

    def __init__(self, board: Board, username: str | None = None, password: str | None = None,
                 where: Callable[[], AbstractContextManager[object]] = nullcontext) -> None:
        self.board = board
        self.ops: dict[str, Op] = {}
        self.strays: list[Answer] = []
        # Its job ids start with this: an answer to another client's job (on a mesh that outlives
        # one Recorder, a board sends recent answers again when it reconnects) is not unexpected.
        self.prefix = uuid.uuid4().hex[:6]
        self.others: list[Answer] = []
        self._secrets: dict[str, str] = {}
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._subscribed = threading.Event()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                   client_id=f"history-{uuid.uuid4().hex[:8]}")
        self._client.message_callback_add(topics.answers(board.device), self._on_answer)
        self._client.message_callback_add(topics.ALL_PROGRESS, self._on_progress)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        if username:
            self._client.username_pw_set(username, password)
        with where():
            self._client.connect(board.host, board.port)
        self._client.loop_start()
        self._client.subscribe([(topics.answers(board.device), 1), (topics.ALL_PROGRESS, 0)])
        if not self._subscribed.wait(10):
            raise AssertionError(f"could not subscribe to answers on {board.device}'s broker")
        self._closed = threading.Event()
        self._resender = threading.Thread(target=self._resend, name="resubmit", daemon=True)
        self._resender.start()

    def offer(self, origin: str, prompt: str, layers: int, proposers: int) -> Op:
        job_id = self.prefix + uuid.uuid4().hex[:10]
        secret = new_secret()
        submit = Submit(job_id=job_id, prompt=prompt, layers=layers, proposers=proposers,
                        reply_to=self.board.device, created_at=time.time(), secret=secret)
        op = Op(job_id, origin, time.monotonic(), payload=submit.encode())
        op.resend_at = op.invoked + op.pause
        with self._lock:
            self.ops[job_id] = op
            self._secrets[job_id] = secret
        info = self._client.publish(topics.submit(origin), op.payload, qos=1)
        try:
            info.wait_for_publish(timeout=10)
            op.acked = info.is_published()
        except (ValueError, RuntimeError):
            op.acked = False
        return op

    def _on_answer(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        answer = decode(message.payload, Answer)
        with self._lock:
            op = self.ops.get(answer.job_id)
            if op is None and not answer.job_id.startswith(self.prefix):
                self.others.append(answer)
            elif op is None or self._secrets.get(answer.job_id) != answer.secret:
                self.strays.append(answer)
            else:
                op.answers.append((time.monotonic(), answer))
            self._answered.notify_all()

    def _on_progress(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        progress = decode(message.payload, Progress)
        with self._lock:
            op = self.ops.get(progress.job_id)
            if op is not None and progress.event == "accepted":
                op.accepted = True

    def _resend(self) -> None:
        while not self._closed.wait(0.5):
            now = time.monotonic()
            with self._lock:
                due = [op for op in self.ops.values() if not (op.accepted or op.answers) and now >= op.resend_at]
                for op in due:
                    op.pause = min(op.pause * 2, RESUBMIT_MAX_S)
                    op.resend_at = now + op.pause
            for op in due:
                self._client.publish(topics.submit(op.origin), op.payload, qos=1)

    def wait_all_answered(self, timeout_s: float) -> bool:
        """Wait until every acknowledged op has an answer."""
        with self._lock:
            return self._answered.wait_for(
                lambda: all(op.answers for op in self.ops.values() if op.acked), timeout_s)

    def wait_answered(self, job_ids: list[str], timeout_s: float) -> bool:
        """Wait until each of these jobs has an answer."""
        with self._lock:
            return self._answered.wait_for(lambda: all(self.ops[j].answers for j in job_ids), timeout_s)

    def close(self) -> None:
        self._closed.set()
        self._resender.join(5)
        self._client.loop_stop()
        self._client.disconnect()


def final_aggregations(stores: list[Path]) -> dict[str, int]:
    """Per job, how many final aggregations its origin's store shows completed."""
    counts: dict[str, int] = defaultdict(int)
    for path in stores:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT d.job_id, COUNT(*) FROM dispatches d JOIN jobs j ON d.job_id = j.job_id "
                "WHERE d.layer = j.layers + 1 AND d.state = 'done' GROUP BY d.job_id").fetchall()
        finally:
            db.close()
        for job_id, n in rows:
            counts[job_id] += n
    return counts


def check(recorder: Recorder, stores: list[Path]) -> Verdict:
    ops = list(recorder.ops.values())
    acknowledged = [op for op in ops if op.acked]
    answered = [op for op in ops if op.answers]
    aggregations = final_aggregations(stores)
    duplicated = sorted({op.job_id for op in answered if len({a.answer for _, a in op.answers}) > 1}
                        | {job for job, n in aggregations.items() if n > 1})
    return Verdict(
        offered=len(ops),
        acknowledged=len(acknowledged),
        answered=len(answered),
        lost=sorted(op.job_id for op in acknowledged if not op.answers),
        duplicated=duplicated,
        unexpected=sorted({a.job_id for a in recorder.strays}),
        recovered=sorted(op.job_id for op in answered if not op.acked),
        refused=sorted(op.job_id for op in answered if not op.answers[0][1].ok),
        latencies=sorted(op.answers[0][0] - op.invoked for op in answered),
    )
