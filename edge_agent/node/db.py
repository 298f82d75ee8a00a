"""The SQLite file under the store: schema, one connection behind one lock, and transactions.

WAL with synchronous=FULL: a commit is on the disk when it returns, so what the agent acknowledges
after a commit survives SIGKILL and power loss. Transactions nest: a step that spans several
writes (a result recorded and the next layer dispatched) is one commit. Writes whose loss a
restart repairs anyway (a task marked running, an acknowledged outbox row deleted) may commit
without waiting for the disk; the next durable commit carries them to it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.errors import DiskFull, StorageError

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


class Database:
    """The connection and its transactions. Events tell the agent's threads, once a commit is on
    the disk, that it queued a task (`tasks_ready`) or a message to publish (`outbox_ready`)."""

    def __init__(self, path: Path | str, synchronous: str = "FULL") -> None:
        """synchronous: FULL, the agent's; OFF only to measure what waiting for the disk costs."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._synchronous = synchronous
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        for table, column, definition in MIGRATIONS:
            if column not in {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        self.tasks_ready = threading.Event()
        self.outbox_ready = threading.Event()
        self._depth = 0
        self._queued_task = self._queued_message = False

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
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One commit for everything written inside, however deeply nested. durable=False (only
        for the outermost) commits without waiting for the disk."""
        with self._guarded() as db:
            if self._depth:
                self._depth += 1
                try:
                    yield db
                finally:
                    self._depth -= 1
                return
            if not durable and self._synchronous == "FULL":
                db.execute("PRAGMA synchronous=NORMAL")
            self._depth = 1
            self._queued_task = self._queued_message = False
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
            finally:
                self._depth = 0
                if not durable and self._synchronous == "FULL":
                    db.execute("PRAGMA synchronous=FULL")
            if self._queued_task:
                self.tasks_ready.set()
            if self._queued_message:
                self.outbox_ready.set()

    def _put_outbox(self, db: sqlite3.Connection, topic: str, payload: bytes, created_at: float,
                    retain: bool = False) -> int:
        """Every message that must reach the broker goes through here, inside a transaction."""
        cur = db.execute("INSERT INTO outbox(topic, payload, retain, created_at) VALUES (?, ?, ?, ?)",
                         (topic, payload, int(retain), created_at))
        self._queued_message = True
        return int(cur.lastrowid or 0)

    def _noted_task(self) -> None:
        self._queued_task = True
