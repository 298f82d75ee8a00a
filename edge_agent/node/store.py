"""The agent's durable state in SQLite (WAL, synchronous=FULL): one file, one connection.

Tables: `inbox` (tasks for this device, FCFS by arrival order: inbox.py), `jobs`, `submits` and
`dispatches` (prompts this device is origin of and every task they sent: jobs.py), `outbox`
(messages to publish until the broker acknowledges them) and `dead_letters` (messages a handler
failed on). Each write that acknowledges something is committed before the acknowledgement, so
acknowledged work survives SIGKILL and power loss (db.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass

from edge_agent.errors import StorageError
from edge_agent.node.db import OutboxRow, is_storage_failure
from edge_agent.node.inbox import InboxTables
from edge_agent.node.jobs import DispatchRow, JobRow, JobTables, Send

# Outbox rows read per query when publishing.
CHUNK = 500

__all__ = ["DeadLetter", "DispatchRow", "JobRow", "Send", "Store", "is_storage_failure"]


@dataclass(frozen=True)
class DeadLetter:
    id: int
    topic: str
    payload: bytes
    reason: str
    received_at: float


class Store(InboxTables, JobTables):
    # -- outbox ------------------------------------------------------------------------
    def add_outbox(self, topic: str, payload: bytes, retain: bool = False) -> int:
        with self.transaction() as db:
            return self._put_outbox(db, topic, payload, time.time(), retain)

    def outbox(self, skip: Collection[int] = ()) -> list[OutboxRow]:
        """The rows to publish, oldest first, but those in skip (in flight already)."""
        rows: list[sqlite3.Row] = []
        with self._guarded() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM outbox ORDER BY id") if r[0] not in skip]
            for start in range(0, len(ids), CHUNK):  # one query per chunk, under SQLite's variable limit
                chunk = ids[start:start + CHUNK]
                rows += db.execute(f"SELECT id, topic, payload, retain FROM outbox WHERE id IN "
                                   f"({','.join('?' * len(chunk))}) ORDER BY id", chunk).fetchall()
        return [(r["id"], r["topic"], bytes(r["payload"]), bool(r["retain"])) for r in rows]

    def outbox_done(self, *outbox_ids: int) -> None:
        """Forget rows the broker acknowledged. Not waited onto the disk: a row that comes back
        after a power cut is published again, and receivers deduplicate."""
        with self.transaction(durable=False) as db:
            db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in outbox_ids])

    # -- housekeeping ------------------------------------------------------------------
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
