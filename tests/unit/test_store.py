import sqlite3
import time

import pytest

from edge_agent.errors import DiskFull, StorageError
from edge_agent.node.db import SCHEMA, is_storage_failure
from edge_agent.node.store import DispatchRow, Store
from edge_agent.wire.messages import Result, Submit, Task


def task(n):
    return Task(task_id=f"t{n}", job_id="j", origin="edge-1", layer=1, role="propose", prompt=f"p{n}")


def test_fcfs_order_and_dedup(tmp_path):
    store = Store(tmp_path / "a.db")
    assert store.enqueue(task(1)) and store.enqueue(task(2))
    assert not store.enqueue(task(1)), "a repeated task id is a duplicate"
    assert store.queue_depth() == 2
    first, _ = store.claim_next()
    second, _ = store.claim_next()
    assert (first.task_id, second.task_id) == ("t1", "t2")
    assert store.claim_next() is None


def test_running_tasks_survive_a_crash_and_go_back_in_order(tmp_path):
    path = tmp_path / "a.db"
    store = Store(path)
    for n in range(3):
        store.enqueue(task(n))
    store.claim_next()
    del store  # no close: as if the process died
    reopened = Store(path)
    assert reopened.requeue_running() == 1
    assert reopened.claim_next()[0].task_id == "t0"
    assert reopened.queue_depth() == 3


def test_finishing_a_task_writes_its_result_to_the_outbox_atomically(tmp_path):
    store = Store(tmp_path / "a.db")
    store.enqueue(task(1))
    store.claim_next()
    store.finish_task("t1", "dmoa/v1/to/edge-1/result", b"payload")
    assert store.queue_depth() == 0
    ((outbox_id, *row),) = store.outbox()
    assert row == ["dmoa/v1/to/edge-1/result", b"payload", False]
    store.outbox_done(outbox_id)
    assert store.outbox() == []


def test_store_uses_wal_and_full_sync(tmp_path):
    store = Store(tmp_path / "a.db")
    db = sqlite3.connect(tmp_path / "a.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "WAL is a property of the file"
    # synchronous is a property of the connection: ask the store's own (2 = FULL: fsync at every
    # commit, so an acknowledged commit survives a power cut; NORMAL would not)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


def dispatch_row(job, device, slot, attempt=0):
    return DispatchRow(task_id=f"{job}/1/{device}/{attempt}", job_id=job, layer=1, slot=slot, role="propose",
                       device=device, attempt=attempt, state="pending", sent_at=0.0, deadline=None)


def test_results_are_recorded_once_and_late_ones_ignored(tmp_path):
    store = Store(tmp_path / "a.db")
    store.create_job(Submit(job_id="j", prompt="p", layers=1, proposers=1), 1, 1, "uniform", [])
    rows = [dispatch_row("j", "edge-1", 0), dispatch_row("j", "edge-2", 1)]
    assert store.dispatch("j", 0, 1, [(r, "t", b"x") for r in rows])
    assert not store.dispatch("j", 0, 1, [(dispatch_row("j", "edge-3", 2), "t", b"x")]), "layer moved on"
    result = Result(task_id=rows[0].task_id, job_id="j", device="edge-1", layer=1, role="propose", ok=True,
                    text="answer", seconds=1.5)
    recorded = store.record_result(result)
    assert recorded is not None and recorded.text == "answer" and recorded.state == "done"
    assert store.record_result(result) is None, "a duplicate result changes nothing"
    assert store.abandon(rows[1].task_id, "missed deadline")
    late = Result(task_id=rows[1].task_id, job_id="j", device="edge-2", layer=1, role="propose", ok=True)
    assert store.record_result(late) is None, "a result after abandonment is ignored"


def test_a_job_finishes_once(tmp_path):
    store = Store(tmp_path / "a.db")
    store.create_job(Submit(job_id="j", prompt="p", layers=0, proposers=0), 0, 0, "uniform", [])
    assert store.finish_job("j", "done", "a", "", False, [], "topic", b"x")
    assert not store.finish_job("j", "done", "a", "", False, [], "topic", b"x")
    assert store.job("j").state == "done"
    assert len(store.outbox()) == 1


def test_prune_forgets_only_what_is_finished_and_old(tmp_path):
    store = Store(tmp_path / "a.db")
    store.enqueue(task(1))
    store.enqueue(task(2))
    store.claim_next()
    store.finish_task("t1", "topic", b"x")
    store.create_job(Submit(job_id="old", prompt="p", layers=0, proposers=0), 0, 0, "uniform", [])
    store.finish_job("old", "done", "a", "", False, [], "topic", b"x")
    store.create_job(Submit(job_id="live", prompt="p", layers=0, proposers=0), 0, 0, "uniform", [])
    store.prune(older_than_s=-1)  # everything finished counts as old
    assert store.job("old") is None and store.job("live") is not None
    assert store.queue_depth() == 1 and not store.enqueue(task(2)), "queued tasks are kept"
    assert store.enqueue(task(1)), "a pruned task id is forgotten"


def test_storage_failures_are_told_apart_from_errors_in_the_data(tmp_path):
    store = Store(tmp_path / "a.db")
    store.create_job(Submit(job_id="j", prompt="p", layers=1, proposers=1), 1, 1, "uniform", [])
    row = dispatch_row("j", "edge-1", 0)
    assert store.dispatch("j", 0, 1, [(row, "t", b"x")])
    with pytest.raises(sqlite3.IntegrityError):  # a bug or a bad message, not the disk
        store.dispatch("j", 1, 1, [(row, "t", b"x")])
    store._db.execute("PRAGMA query_only=ON")  # every write now fails as a read-only disk would
    with pytest.raises(StorageError, match="the store failed"):
        store.enqueue(task(9))
    assert is_storage_failure(sqlite3.OperationalError("database or disk is full"))
    assert is_storage_failure(sqlite3.DatabaseError("database disk image is malformed"))
    assert not is_storage_failure(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not is_storage_failure(sqlite3.ProgrammingError("misuse"))


def test_dead_letters_are_kept_across_a_restart(tmp_path):
    path = tmp_path / "a.db"
    Store(path).add_dead_letter("dmoa/v1/to/edge-1/task", b"\xff{", "RuntimeError: boom")
    (letter,) = Store(path).dead_letters()
    assert (letter.topic, letter.payload, letter.reason) == ("dmoa/v1/to/edge-1/task", b"\xff{", "RuntimeError: boom")


def test_a_store_from_before_secrets_gains_their_columns(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.replace(",\n    secret TEXT NOT NULL DEFAULT ''", ""))
    db.execute("INSERT INTO jobs(job_id, prompt, layers, proposers, policy, created_at) "
               "VALUES ('old', 'p', 0, 0, 'uniform', 1.0)")
    db.commit()
    db.close()
    assert "secret" not in {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(jobs)")}
    store = Store(path)
    assert store.job("old").secret == ""
    assert store.create_job(Submit(job_id="new", prompt="p", layers=0, proposers=0, secret="ab" * 16),
                            0, 0, "uniform", [])
    assert store.job("new").secret == "ab" * 16


def test_a_full_disk_is_its_own_storage_failure_and_nothing_is_half_written(tmp_path):
    store = Store(tmp_path / "a.db")
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite answers SQLITE_FULL past this
    with pytest.raises(DiskFull):
        for n in range(100):
            store.enqueue(Task(task_id=f"t{n}", job_id="j", origin="edge-1", layer=1, role="propose",
                               prompt="p" * 2000))
    depth = store.queue_depth()
    assert 0 < depth < 100, "the tasks before the limit are kept, the one that hit it is not half-written"
    store._db.execute(f"PRAGMA max_page_count = {pages * 100}")  # room again
    assert store.writable()
    assert store.enqueue(task(999)) and store.queue_depth() == depth + 1, "the store carries on where it stood"


def test_a_finished_tasks_result_is_kept_to_be_sent_again(tmp_path):
    store = Store(tmp_path / "a.db")
    store.enqueue(task(1))
    store.enqueue(task(2))
    assert not store.resend_result("t1"), "not finished yet: nothing to send again"
    store.claim_next()
    store.finish_task("t1", "dmoa/v1/to/edge-1/result", b"result-1")
    for outbox_id, *_ in store.outbox():
        store.outbox_done(outbox_id)  # the broker acknowledged it ...
    assert store.resend_result("t1")  # ... and lost it: the origin asks again
    assert [(t, p) for _, t, p, _ in store.outbox()] == [("dmoa/v1/to/edge-1/result", b"result-1")]
    assert store.resend_results(since=time.time() - 60) == 1
    assert store.resend_results(since=time.time() + 60) == 0


def test_nested_writes_are_one_transaction_and_wake_nobody_before_the_commit(tmp_path):
    store = Store(tmp_path / "a.db")
    published = []
    store.publish_with(lambda: published.extend(store.take_committed()))
    with pytest.raises(RuntimeError), store.transaction():
        store.enqueue(task(1))
        store.add_outbox("t/1", b"a")
        assert store.queue_depth() == 1  # written, inside
        assert not store.tasks_ready.is_set() and published == []
        raise RuntimeError("the step fails after both writes")
    assert store.queue_depth() == 0 and store.outbox() == []  # both undone together
    assert not store.tasks_ready.is_set() and published == []
    with store.transaction():
        store.enqueue(task(2))
        store.add_outbox("t/2", b"b")
        assert not store.tasks_ready.is_set() and published == []
    assert store.tasks_ready.is_set()
    assert [(topic, payload) for _, topic, payload, _ in published] == [("t/2", b"b")]
    assert [row[0] for row in published] == [row[0] for row in store.outbox()], "the rows as stored"


def durable_commits(statements: list[str]) -> int:
    """How many of these statements are commits made while synchronous was FULL (the store's
    setting between steps)."""
    full, count = True, 0
    for sql in statements:
        if sql.startswith("PRAGMA synchronous="):
            full = sql.endswith("FULL")
        count += full and sql == "COMMIT"
    return count


def test_a_step_a_restart_repairs_still_waits_for_the_disk_before_its_messages_leave(tmp_path):
    store = Store(tmp_path / "a.db")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    handed_over: list[list[str]] = []  # the statements made by the time the messages were handed over
    store.publish_with(lambda: handed_over.append(list(statements)))
    with store.transaction(durable=False, sync_if_sending=True):
        store.enqueue(task(1))  # nothing to send: nothing waits for the disk
    assert statements.count("COMMIT") == 1 and durable_commits(statements) == 0
    mark = len(statements)
    with store.transaction(durable=False, sync_if_sending=True):
        store.add_outbox("t/1", b"a")
    assert handed_over and durable_commits(handed_over[0][mark:]) == 1, "synced before it was handed over"
    mark = len(statements)
    with store.transaction(durable=False):
        store.add_outbox("t/2", b"b")  # a peer's result: it may leave before it is on the disk
    assert statements[mark:].count("COMMIT") == 1 and durable_commits(statements[mark:]) == 0


def test_writes_a_restart_repairs_skip_the_disk_wait_and_leave_the_rest_durable(tmp_path):
    store = Store(tmp_path / "a.db")
    store.enqueue(task(1))
    store.claim_next()  # committed with synchronous=NORMAL ...
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # ... then FULL again
    store.requeue_running()
    assert store.claim_next()[0].task_id == "t1"


class RecordingConnection:
    """The store's connection, with every statement it executes recorded."""

    def __init__(self, db):
        self._db, self.statements = db, []

    def execute(self, sql, *args):
        self.statements.append(sql)
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_peers_result_skips_the_disk_wait_and_a_result_of_the_devices_own_job_does_not(tmp_path):
    store = Store(tmp_path / "a.db")
    store.enqueue(task(1))
    store.enqueue(task(2))
    store.claim_next()
    store.claim_next()
    store._db = recording = RecordingConnection(store._db)
    store.finish_task("t1", "dmoa/v1/to/edge-1/result", b"r")
    assert "PRAGMA synchronous=NORMAL" in recording.statements
    assert recording.statements[-1] == "PRAGMA synchronous=FULL"
    recording.statements.clear()
    store.finish_task("t2", "", b"r")
    assert "COMMIT" in recording.statements and "PRAGMA synchronous=NORMAL" not in recording.statements
    assert [topic for _, topic, _, _ in store.outbox()] == ["dmoa/v1/to/edge-1/result"]
