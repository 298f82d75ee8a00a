"""A damaged store is detected before the agent opens it, moved aside with its WAL files, and the
agent starts on an empty one."""

import sqlite3

import pytest

from edge_agent.node.quarantine import damage, quarantine_if_damaged
from edge_agent.node.store import Store
from edge_agent.wire.messages import Task


def filled_store(path, tasks=200):
    store = Store(path)
    for n in range(tasks):
        store.enqueue(Task(task_id=f"t{n}", job_id="j", origin="edge-1", layer=1, role="propose", prompt="p" * 500))
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def truncate(path):
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def flip_btree_page_types(path):
    """Flip bits in the first byte of every page after the first: the b-tree page type."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page, len(data), page):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("harm", [truncate, flip_btree_page_types, empty])
def test_a_damaged_store_is_moved_aside_and_a_fresh_one_starts(tmp_path, harm):
    path = filled_store(tmp_path / "agent.db")
    assert damage(path) == "", "the intact store passes the check"
    harm(path)
    note = quarantine_if_damaged(path)
    assert note.startswith(f"the store {path} was damaged (") and note.endswith("started empty")
    (moved,) = [p for p in tmp_path.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert moved.name in note and not path.exists()
    fresh = Store(path)
    assert fresh.queue_depth() == 0 and damage(path) == ""


def test_a_sound_or_missing_store_is_left_alone(tmp_path):
    assert quarantine_if_damaged(tmp_path / "none.db") == ""
    path = filled_store(tmp_path / "agent.db", tasks=3)
    assert quarantine_if_damaged(path) == "" and Store(path).queue_depth() == 3
