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
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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
    at REAL NOT NULL                           -- rewritten: does the disk take writes? (or to sync)
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

# An outbox row as the publisher takes it: id, topic, payload, retain.
OutboxRow = tuple[int, str, bytes, bool]

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
    """The connection and its transactions. Once a commit returns, `tasks_ready` tells the consumer
    that it queued a task, and the publisher (publish_with) gets the messages it queued."""

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
        self._depth = 0
        self._queued_task = False
        self._new_rows: list[OutboxRow] = []
        self._committed: deque[OutboxRow] = deque()
        self._publisher: Callable[[], None] | None = None

    def publish_with(self, publisher: Callable[[], None]) -> None:
        """Call publisher() after each commit that queued messages, on the committing thread once
        the lock is released; it takes them with take_committed(). The message of a step leaves
        with the step, and nobody reads the outbox back to find it."""
        self._publisher = publisher

    def take_committed(self) -> list[OutboxRow]:
        """The outbox rows committed since the last call, in commit order (which is id order)."""
        rows = []
        while self._committed:
            rows.append(self._committed.popleft())
        return rows

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
    def transaction(self, durable: bool = True, sync_if_sending: bool = False) -> Iterator[sqlite3.Connection]:
        """One commit for everything written inside, however deeply nested. durable=False (only
        for the outermost) commits without waiting for the disk; with sync_if_sending, a commit
        that queued messages is waited onto the disk all the same before they leave."""
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
            self._queued_task, self._new_rows = False, []
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")  # may fail too (a full disk): then nothing was written
            except BaseException:
                _roll_back(db)
                raise
            finally:
                self._depth = 0
                if not durable and self._synchronous == "FULL":
                    db.execute("PRAGMA synchronous=FULL")
            queued_task, new_rows, self._new_rows = self._queued_task, self._new_rows, []
            if new_rows and not durable and sync_if_sending and self._synchronous == "FULL":
                self._sync(db)
            if new_rows and self._publisher is not None:
                self._committed.extend(new_rows)  # under the lock: in commit order
        if queued_task:
            self.tasks_ready.set()
        if new_rows and self._publisher is not None:
            self._publisher()

    def _sync(self, db: sqlite3.Connection) -> None:
        """Wait the commits made so far onto the disk: a durable commit syncs the log up to it."""
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO probe(id, at) VALUES (1, 0)")
            db.execute("COMMIT")
        except BaseException:
            _roll_back(db)
            raise

    def _put_outbox(self, db: sqlite3.Connection, topic: str, payload: bytes, created_at: float,
                    retain: bool = False) -> int:
        """Every message that must reach the broker goes through here, inside a transaction."""
        cur = db.execute("INSERT INTO outbox(topic, payload, retain, created_at) VALUES (?, ?, ?, ?)",
                         (topic, payload, int(retain), created_at))
        outbox_id = int(cur.lastrowid or 0)
        self._new_rows.append((outbox_id, topic, payload, retain))
        return outbox_id

    def _noted_task(self) -> None:
        self._queued_task = True


def _roll_back(db: sqlite3.Connection) -> None:
    """Undo a transaction a failure left open; the failure itself says more than a failed rollback."""
    if db.in_transaction:
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK")
