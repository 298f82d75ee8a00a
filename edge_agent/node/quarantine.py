"""A damaged store is detected before the agent opens it and moved aside, never patched.

SQLite keeps its structure checkable (`PRAGMA quick_check`): a truncated file, or a flipped bit in
a page header or a b-tree, makes it fail. Stored text carries no checksum, so a bit flipped inside
a prompt or an answer goes unnoticed; the structure is what would stop the agent. A zero-length
file is damage too: a store the agent created always holds its schema. A damaged page of which
the WAL holds a newer copy is no damage: SQLite reads the WAL's copy and the next checkpoint
writes it back.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SIDE_FILES = ("-wal", "-shm")


def damage(path: Path) -> str:
    """Why the store at path cannot be trusted, or "" when it is sound or does not exist."""
    if not path.exists():
        return ""
    if path.stat().st_size == 0:
        return "the file is empty"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        return str(err)
    problems = [str(r[0]) for r in rows if r[0] != "ok"]
    return "; ".join(problems[:3])


def move_aside(path: Path) -> Path:
    """Rename the store and its WAL files to <name>.damaged-<UTC time>; return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", *SIDE_FILES):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(Path(f"{target}{suffix}"))
    return target


def quarantine_if_damaged(path: Path) -> str:
    """Move a damaged store aside; return a one-line note saying so, or "" if it was sound."""
    reason = damage(path)
    if not reason:
        return ""
    moved = move_aside(path)
    return f"the store {path} was damaged ({reason}); moved aside to {moved.name}; started empty"
