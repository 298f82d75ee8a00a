"""The inbox table: this device's FCFS queue of tasks, and the results it sent for them."""

from __future__ import annotations

import time

from edge_agent.node.db import Database
from edge_agent.wire.messages import Task, decode


class InboxTables(Database):
    def enqueue(self, task: Task, result_topic: str = "", now: float | None = None) -> bool:
        """Store a task; False if its task_id was seen before (a duplicate)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO inbox(task_id, payload, received_at, result_topic) VALUES (?, ?, ?, ?)",
                (task.task_id, task.encode(), now or time.time(), result_topic),
            )
            if cur.rowcount == 1:
                self._noted_task()
            return cur.rowcount == 1

    def claim_next(self) -> tuple[Task, float] | None:
        """Mark the oldest queued task running and return it with its arrival time.

        Not waited onto the disk: after a power cut every running task is queued again anyway."""
        with self.transaction(durable=False) as db:
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
            row = db.execute("SELECT COUNT(*) FROM inbox WHERE state IN ('queued', 'running')").fetchone()
            return int(row[0])

    def finish_task(self, task_id: str, topic: str, payload: bytes) -> None:
        """Mark a task done, keep its result and queue it for its origin, atomically. topic ""
        (a task of this device's own job): kept only, the coordinator takes it directly.

        A peer's result is not waited onto the disk: the task was acknowledged when it was
        queued, and a power cut that loses this commit queues it again, so it runs twice at
        worst and its origin drops the second result. The next durable commit carries it to the
        disk; meanwhile the result is one fsync closer to its origin."""
        now = time.time()
        with self.transaction(durable=not topic) as db:
            db.execute(
                "UPDATE inbox SET state='done', finished_at=?, result_topic=?, result=? WHERE task_id=?",
                (now, topic, payload, task_id),
            )
            if topic:
                self._put_outbox(db, topic, payload, now)

    def resend_result(self, task_id: str) -> bool:
        """Queue the kept result of a finished task again; False if the task is not finished."""
        with self.transaction() as db:
            row = db.execute("SELECT result_topic, result FROM inbox WHERE task_id=? AND state='done' "
                             "AND result IS NOT NULL AND result_topic != ''", (task_id,)).fetchone()
            if row is not None:
                self._put_outbox(db, row["result_topic"], bytes(row["result"]), time.time())
            return row is not None

    def resend_results(self, since: float) -> int:
        """Queue again every result finished at or after since (wall clock); how many."""
        with self.transaction() as db:
            rows = db.execute("SELECT result_topic, result FROM inbox WHERE state='done' AND finished_at >= ? "
                              "AND result IS NOT NULL AND result_topic != '' ORDER BY seq", (since,)).fetchall()
            now = time.time()
            for row in rows:
                self._put_outbox(db, row["result_topic"], bytes(row["result"]), now)
            return len(rows)
