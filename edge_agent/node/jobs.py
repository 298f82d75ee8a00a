"""The tables of the jobs this device is origin of: the job, its submit, and every task it sent
(a dispatch) with its result. Writes return the rows as they stand after them."""

from __future__ import annotations

import hmac
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Literal

from edge_agent.errors import ProtocolError
from edge_agent.node.db import Database
from edge_agent.wire.messages import Result, Role, Submit, decode

JobState = Literal["running", "done", "failed"]
# A task sent for a job: awaiting its result, answered, failed, or given up on after a deadline.
DispatchState = Literal["pending", "done", "failed", "abandoned"]


@dataclass(frozen=True)
class JobRow:
    job_id: str
    prompt: str
    layers: int
    proposers: int
    policy: str
    reply_to: str
    state: JobState
    layer: int
    degraded: bool
    notes: list[str]
    answer: str
    error: str
    created_at: float
    finished_at: float | None
    secret: str = ""


@dataclass(frozen=True)
class DispatchRow:
    task_id: str
    job_id: str
    layer: int
    slot: int
    role: Role
    device: str
    attempt: int
    state: DispatchState
    sent_at: float
    deadline: float | None
    text: str = ""
    error: str = ""
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    queue_wait_s: float = 0.0
    truncated: bool = False
    secret: str = ""


# A dispatch to record, and the task message for it: its topic ("" for a task this device
# queues for itself) and payload.
Send = tuple[DispatchRow, str, bytes]


class JobTables(Database):
    def create_job(self, submit: Submit, layers: int, proposers: int, policy: str,
                   notes: list[str]) -> JobRow | None:
        """Record a new job with its submit; None if the job exists already."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs(job_id, prompt, layers, proposers, policy, reply_to, notes, "
                "created_at, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (submit.job_id, submit.prompt, layers, proposers, policy, submit.reply_to, json.dumps(notes),
                 time.time(), submit.secret),
            )
            if cur.rowcount != 1:
                return None
            db.execute("INSERT OR IGNORE INTO submits(job_id, payload) VALUES (?, ?)",
                       (submit.job_id, submit.encode()))
            return self._job_row(db, submit.job_id)

    def submit_of(self, job_id: str) -> Submit | None:
        with self._guarded() as db:
            row = db.execute("SELECT payload FROM submits WHERE job_id=?", (job_id,)).fetchone()
        return decode(row["payload"], Submit, max_bytes=len(row["payload"])) if row else None

    def job(self, job_id: str) -> JobRow | None:
        with self._guarded() as db:
            row = db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def jobs_finished_since(self, since: float) -> list[JobRow]:
        with self._guarded() as db:
            rows = db.execute("SELECT * FROM jobs WHERE state != 'running' AND finished_at >= ? ORDER BY finished_at",
                              (since,)).fetchall()
        return [_job(r) for r in rows]

    def jobs(self, state: JobState | None = None) -> list[JobRow]:
        with self._guarded() as db:
            if state is None:
                rows = db.execute("SELECT * FROM jobs ORDER BY created_at").fetchall()
            else:
                rows = db.execute("SELECT * FROM jobs WHERE state=? ORDER BY created_at", (state,)).fetchall()
        return [_job(r) for r in rows]

    def update_job(self, job_id: str, **values: object) -> JobRow:
        """Change a job's fields; the job as it is now."""
        allowed = {"state", "layer", "degraded", "notes", "answer", "error", "finished_at"}
        if not values or set(values) - allowed:
            raise ValueError(f"cannot update job fields {sorted(set(values) - allowed)}")
        if "notes" in values:
            values["notes"] = json.dumps(values["notes"])
        assignments = ", ".join(f"{name}=?" for name in values)
        with self.transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE job_id=?", (*values.values(), job_id))
            return self._job_row(db, job_id)

    def dispatch(self, job_id: str, from_layer: int, to_layer: int, sends: list[Send]) -> bool:
        """Record tasks and queue their messages in one transaction.

        The job's layer moves from from_layer to to_layer in the same transaction; if it is no
        longer at from_layer (someone advanced it already) nothing is written and False is
        returned. Re-dispatches within a layer pass the same number twice.
        """
        now = time.time()
        with self.transaction() as db:
            cur = db.execute("UPDATE jobs SET layer=? WHERE job_id=? AND layer=? AND state='running'",
                             (to_layer, job_id, from_layer))
            if cur.rowcount != 1:
                return False
            for d, topic, payload in sends:
                db.execute(
                    "INSERT INTO dispatches(task_id, job_id, layer, slot, role, device, attempt, state, "
                    "sent_at, deadline, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (d.task_id, d.job_id, d.layer, d.slot, d.role, d.device, d.attempt, d.state,
                     d.sent_at, d.deadline, d.secret),
                )
                if topic:
                    self._put_outbox(db, topic, payload, now)
            return True

    def finish_job(self, job_id: str, state: JobState, answer: str, error: str, degraded: bool,
                   notes: list[str], topic: str, payload: bytes) -> JobRow | None:
        """Close a running job and queue its answer, atomically; None if it was closed already."""
        now = time.time()
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET state=?, answer=?, error=?, degraded=?, notes=?, finished_at=? "
                "WHERE job_id=? AND state='running'",
                (state, answer, error, int(degraded), json.dumps(notes), now, job_id),
            )
            if cur.rowcount != 1:
                return None
            self._put_outbox(db, topic, payload, now)
            return self._job_row(db, job_id)

    def queue_answer(self, topic: str, payload: bytes) -> None:
        """Publish a finished job's answer again (a broker may have lost it)."""
        with self.transaction() as db:
            self._put_outbox(db, topic, payload, time.time())

    def dispatches(self, job_id: str, layer: int | None = None) -> list[DispatchRow]:
        query = "SELECT * FROM dispatches WHERE job_id=?"
        args: tuple[object, ...] = (job_id,)
        if layer is not None:
            query += " AND layer=?"
            args += (layer,)
        with self._guarded() as db:
            rows = db.execute(query + " ORDER BY layer, slot, attempt", args).fetchall()
        return [_dispatch(r) for r in rows]

    def pending_dispatches(self) -> list[DispatchRow]:
        with self._guarded() as db:
            rows = db.execute("SELECT * FROM dispatches WHERE state='pending'").fetchall()
        return [_dispatch(r) for r in rows]

    def record_result(self, result: Result) -> DispatchRow | None:
        """Store a result if its dispatch is still pending; None for duplicates, late ones and
        results of tasks this device never sent.

        Raises ProtocolError for a result that does not prove it comes from the device the task
        was sent to (its device or its secret differ): a forgery, or a confused peer.
        """
        with self.transaction() as db:
            row = db.execute("SELECT * FROM dispatches WHERE task_id=?", (result.task_id,)).fetchone()
            if row is None:
                return None
            if row["device"] != result.device or not hmac.compare_digest(row["secret"], result.secret):
                raise ProtocolError(f"result for task {result.task_id} does not carry the secret of the "
                                    f"task sent to {row['device']}; rejected as forged")
            if row["state"] != "pending":
                return None
            db.execute(
                "UPDATE dispatches SET state=?, text=?, error=?, seconds=?, prompt_tokens=?, "
                "completion_tokens=?, queue_wait_s=?, truncated=? WHERE task_id=?",
                ("done" if result.ok else "failed", result.text, result.error, result.seconds,
                 result.prompt_tokens, result.completion_tokens, result.queue_wait_s,
                 int(result.truncated), result.task_id),
            )
            row = db.execute("SELECT * FROM dispatches WHERE task_id=?", (result.task_id,)).fetchone()
        return _dispatch(row)

    def abandon(self, task_id: str, reason: str) -> bool:
        with self.transaction() as db:
            cur = db.execute("UPDATE dispatches SET state='abandoned', error=? WHERE task_id=? AND state='pending'",
                             (reason, task_id))
            return cur.rowcount == 1

    def _job_row(self, db: sqlite3.Connection, job_id: str) -> JobRow:
        return _job(db.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone())


def _job(row: sqlite3.Row) -> JobRow:
    return JobRow(
        job_id=row["job_id"], prompt=row["prompt"], layers=row["layers"], proposers=row["proposers"],
        policy=row["policy"], reply_to=row["reply_to"], state=row["state"], layer=row["layer"],
        degraded=bool(row["degraded"]), notes=json.loads(row["notes"]), answer=row["answer"], error=row["error"],
        created_at=row["created_at"], finished_at=row["finished_at"], secret=row["secret"],
    )


def _dispatch(row: sqlite3.Row) -> DispatchRow:
    return DispatchRow(
        task_id=row["task_id"], job_id=row["job_id"], layer=row["layer"], slot=row["slot"],
        role=row["role"], device=row["device"], attempt=row["attempt"], state=row["state"],
        sent_at=row["sent_at"], deadline=row["deadline"], text=row["text"], error=row["error"],
        seconds=row["seconds"], prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
        queue_wait_s=row["queue_wait_s"], truncated=bool(row["truncated"]), secret=row["secret"],
    )
