"""The agent's durable state in SQLite (WAL, synchronous=FULL).

Four tables: `inbox` (tasks for this device, FCFS by arrival order), `outbox`
(messages to publish until the broker acknowledges them), `jobs` (prompts this
device is origin of) and `dispatches` (every task a job sent out, with its
result). Each write that acknowledges something is committed before the
acknowledgement, so acknowledged work survives SIGKILL and power loss.
One connection guarded by one lock: the paho thread, the consumer and the
ticker all come through here, and each call is one short transaction.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge_agent.errors import DiskFull, ProtocolError, StorageError
from edge_agent.wire.messages import Result, Role, Submit, Task, decode

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',      -- queued | running | done
    received_at REAL NOT NULL,
    finished_at REAL,
    result_topic TEXT NOT NULL DEFAULT '',     -- where the result went, and its payload: a task's
    result BLOB                                -- result is sent again if a broker lost it
);
CREATE INDEX IF NOT EXISTS inbox_state ON inbox(state, seq);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    layers INTEGER NOT NULL,
    proposers INTEGER NOT NULL,
    policy TEXT NOT NULL,
    reply_to TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'running',     -- running | done | failed
    layer INTEGER NOT NULL DEFAULT 0,
    degraded INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '[]',
    answer TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    finished_at REAL,
    secret TEXT NOT NULL DEFAULT ''            -- the submit's secret, echoed in the answer
);
CREATE TABLE IF NOT EXISTS dispatches (
    task_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    layer INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    role TEXT NOT NULL,
    device TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',     -- pending | done | failed | abandoned
    sent_at REAL NOT NULL,
    deadline REAL,
    text TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    seconds REAL NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    queue_wait_s REAL NOT NULL DEFAULT 0,
    truncated INTEGER NOT NULL DEFAULT 0,
    secret TEXT NOT NULL DEFAULT ''            -- the task's secret; its result must carry it
);
CREATE TABLE IF NOT EXISTS probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL                           -- rewritten to learn whether the disk takes writes
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dispatches_job ON dispatches(job_id, layer);
-- The submit as received, for what a job's tasks carry beyond its prompt (conversation, budgets).
CREATE TABLE IF NOT EXISTS submits (
    job_id TEXT PRIMARY KEY,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dispatches_state ON dispatches(state);
"""


# Columns added after the first schema: (table, column, definition), added to older stores at open.
MIGRATIONS = (
    ("inbox", "result_topic", "TEXT NOT NULL DEFAULT ''"),
    ("inbox", "result", "BLOB"),
    ("jobs", "secret", "TEXT NOT NULL DEFAULT ''"),
    ("dispatches", "secret", "TEXT NOT NULL DEFAULT ''"),
)


def is_storage_failure(err: sqlite3.Error) -> bool:
    """Whether an SQLite error says the store itself failed (disk full, I/O, a damaged or locked
    file) rather than that the data or the code was wrong (constraints, misuse)."""
    return isinstance(err, (sqlite3.OperationalError, sqlite3.InternalError)) or type(err) is sqlite3.DatabaseError


@dataclass(frozen=True)
class DeadLetter:
    id: int
    topic: str
    payload: bytes
    reason: str
    received_at: float


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


class Store:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        for table, column, definition in MIGRATIONS:
            if column not in {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _guarded(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with storage failures raised as StorageError."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as err:
                if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    raise DiskFull(f"the store's disk is full: {err}") from err
                if is_storage_failure(err):
                    raise StorageError(f"the store failed: {err}") from err
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._guarded() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")  # may fail too (a full disk): then nothing was written
            except BaseException:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error says more
                raise

    # -- inbox: this device's FCFS queue ------------------------------------------------
    def enqueue(self, task: Task, now: float | None = None) -> bool:
        """Store a task; False if its task_id was seen before (a duplicate)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO inbox(task_id, payload, received_at) VALUES (?, ?, ?)",
                (task.task_id, task.encode(), now or time.time()),
            )
            return cur.rowcount == 1

    def claim_next(self) -> tuple[Task, float] | None:
        """Mark the oldest queued task running and return it with its arrival time."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT seq, payload, received_at FROM inbox WHERE state='queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE inbox SET state='running' WHERE seq=?", (row["seq"],))
        return decode(row["payload"], Task), row["received_at"]

    def requeue_running(self) -> int:
        """After a crash, tasks that were running go back to the head of the queue."""
        with self.transaction() as db:
            return db.execute("UPDATE inbox SET state='queued' WHERE state='running'").rowcount

    def queue_depth(self) -> int:
        with self._guarded() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM inbox WHERE state IN ('queued', 'running')"
            ).fetchone()
            return int(row[0])

    def finish_task(self, task_id: str, topic: str, payload: bytes) -> int:
        """Mark a task done, keep its result, and put the result in the outbox, atomically."""
        with self.transaction() as db:
            db.execute(
                "UPDATE inbox SET state='done', finished_at=?, result_topic=?, result=? WHERE task_id=?",
                (time.time(), topic, payload, task_id),
            )
            cur = db.execute(
                "INSERT INTO outbox(topic, payload, created_at) VALUES (?, ?, ?)",
                (topic, payload, time.time()),
            )
            return int(cur.lastrowid or 0)

    def resend_result(self, task_id: str) -> bool:
        """Queue the kept result of a finished task again; False if the task is not finished."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO outbox(topic, payload, created_at) SELECT result_topic, result, ? FROM inbox "
                "WHERE task_id=? AND state='done' AND result IS NOT NULL", (time.time(), task_id))
            return cur.rowcount == 1

    def resend_results(self, since: float) -> int:
        """Queue again every result finished at or after since (wall clock); how many."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO outbox(topic, payload, created_at) SELECT result_topic, result, ? FROM inbox "
                "WHERE state='done' AND finished_at >= ? AND result IS NOT NULL ORDER BY seq", (time.time(), since))
            return int(cur.rowcount)

    def prune(self, older_than_s: float = 7 * 86400.0) -> None:
        """Forget finished tasks and jobs past the dedup window so the file stays small."""
        cutoff = time.time() - older_than_s
        with self.transaction() as db:
            db.execute("DELETE FROM inbox WHERE state='done' AND finished_at < ?", (cutoff,))
            old_jobs = "SELECT job_id FROM jobs WHERE state != 'running' AND finished_at < ?"
            db.execute(f"DELETE FROM dispatches WHERE job_id IN ({old_jobs})", (cutoff,))
            db.execute(f"DELETE FROM submits WHERE job_id IN ({old_jobs})", (cutoff,))
            db.execute("DELETE FROM jobs WHERE state != 'running' AND finished_at < ?", (cutoff,))
            db.execute("DELETE FROM dead_letters WHERE received_at < ?", (cutoff,))

    # -- outbox ------------------------------------------------------------------------
    def add_outbox(self, topic: str, payload: bytes, retain: bool = False) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO outbox(topic, payload, retain, created_at) VALUES (?, ?, ?, ?)",
                (topic, payload, int(retain), time.time()),
            )
            return int(cur.lastrowid or 0)

    def outbox(self) -> list[tuple[int, str, bytes, bool]]:
        with self._guarded() as db:
            rows = db.execute("SELECT id, topic, payload, retain FROM outbox ORDER BY id").fetchall()
        return [(r["id"], r["topic"], bytes(r["payload"]), bool(r["retain"])) for r in rows]

    def outbox_done(self, outbox_id: int) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM outbox WHERE id=?", (outbox_id,))

    # -- jobs --------------------------------------------------------------------------
    def create_job(self, submit: Submit, layers: int, proposers: int, policy: str, notes: list[str]) -> bool:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs(job_id, prompt, layers, proposers, policy, reply_to, notes, "
                "created_at, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (submit.job_id, submit.prompt, layers, proposers, policy, submit.reply_to, json.dumps(notes),
                 time.time(), submit.secret),
            )
            return cur.rowcount == 1

    def save_submit(self, submit: Submit) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO submits(job_id, payload) VALUES (?, ?)",
                       (submit.job_id, submit.encode()))

    def submit_of(self, job_id: str) -> Submit | None:
        with self._lock:
            row = self._db.execute("SELECT payload FROM submits WHERE job_id=?", (job_id,)).fetchone()
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

    def jobs(self, state: str | None = None) -> list[JobRow]:
        with self._guarded() as db:
            if state is None:
                rows = db.execute("SELECT * FROM jobs ORDER BY created_at").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM jobs WHERE state=? ORDER BY created_at", (state,)
                ).fetchall()
        return [_job(r) for r in rows]

    def update_job(self, job_id: str, **values: object) -> None:
        allowed = {"state", "layer", "degraded", "notes", "answer", "error", "finished_at"}
        if not values or set(values) - allowed:
            raise ValueError(f"cannot update job fields {sorted(set(values) - allowed)}")
        if "notes" in values:
            values["notes"] = json.dumps(values["notes"])
        assignments = ", ".join(f"{name}=?" for name in values)
        with self.transaction() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE job_id=?", (*values.values(), job_id))

    # -- dispatches --------------------------------------------------------------------
    def dispatch(
        self, job_id: str, from_layer: int, to_layer: int, sends: list[tuple[DispatchRow, str, bytes]]
    ) -> bool:
        """Record tasks and queue their messages in one transaction.

        The job's layer moves from from_layer to to_layer in the same
        transaction; if it is no longer at from_layer (someone advanced it
        already) nothing is written and False is returned. Re-dispatches
        within a layer pass the same number twice.
        """
        now = time.time()
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET layer=? WHERE job_id=? AND layer=? AND state='running'",
                (to_layer, job_id, from_layer),
            )
            if cur.rowcount != 1:
                return False
            for d, topic, payload in sends:
                db.execute(
                    "INSERT INTO dispatches(task_id, job_id, layer, slot, role, device, attempt, state, "
                    "sent_at, deadline, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (d.task_id, d.job_id, d.layer, d.slot, d.role, d.device, d.attempt, d.state,
                     d.sent_at, d.deadline, d.secret),
                )
                db.execute(
                    "INSERT INTO outbox(topic, payload, created_at) VALUES (?, ?, ?)", (topic, payload, now)
                )
            return True

    def finish_job(
        self, job_id: str, state: str, answer: str, error: str, degraded: bool, notes: list[str],
        topic: str, payload: bytes,
    ) -> bool:
        """Close a running job and queue its answer, atomically; False if it was closed already."""
        now = time.time()
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET state=?, answer=?, error=?, degraded=?, notes=?, finished_at=? "
                "WHERE job_id=? AND state='running'",
                (state, answer, error, int(degraded), json.dumps(notes), now, job_id),
            )
            if cur.rowcount != 1:
                return False
            db.execute("INSERT INTO outbox(topic, payload, created_at) VALUES (?, ?, ?)", (topic, payload, now))
            return True

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
            cur = db.execute(
                "UPDATE dispatches SET state='abandoned', error=? WHERE task_id=? AND state='pending'",
                (reason, task_id),
            )
            return cur.rowcount == 1


    def writable(self) -> bool:
        """Whether a commit goes through now (after the disk was full)."""
        try:
            with self.transaction() as db:
                db.execute("INSERT OR REPLACE INTO probe(id, at) VALUES (1, ?)", (time.time(),))
        except StorageError:
            return False
        return True

    # -- dead letters: messages a handler failed on, kept for inspection, never retried --------
    def add_dead_letter(self, topic: str, payload: bytes, reason: str) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO dead_letters(topic, payload, reason, received_at) VALUES (?, ?, ?, ?)",
                             (topic, payload, reason, time.time()))
            return int(cur.lastrowid or 0)

    def dead_letters(self) -> list[DeadLetter]:
        with self._guarded() as db:
            rows = db.execute("SELECT * FROM dead_letters ORDER BY id").fetchall()
        return [DeadLetter(r["id"], r["topic"], bytes(r["payload"]), r["reason"], r["received_at"]) for r in rows]


def _job(row: sqlite3.Row) -> JobRow:
    return JobRow(
        job_id=row["job_id"], prompt=row["prompt"], layers=row["layers"], proposers=row["proposers"],
        policy=row["policy"], reply_to=row["reply_to"], state=row["state"], layer=row["layer"],
        degraded=bool(row["degraded"]),
        notes=json.loads(row["notes"]), answer=row["answer"], error=row["error"],
        created_at=row["created_at"], finished_at=row["finished_at"], secret=row["secret"],
    )


def _dispatch(row: sqlite3.Row) -> DispatchRow:
    return DispatchRow(
        task_id=row["task_id"], job_id=row["job_id"], layer=row["layer"], slot=row["slot"],
        role=row["role"], device=row["device"], attempt=row["attempt"], state=row["state"],
        sent_at=row["sent_at"], deadline=row["deadline"], text=row["text"], error=row["error"],
        seconds=row["seconds"], prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"], queue_wait_s=row["queue_wait_s"],
        truncated=bool(row["truncated"]), secret=row["secret"],
    )
