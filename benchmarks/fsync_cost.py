"""Goal 5: what durable writes cost per task, here and on a slow emulated device.

The agent's store is SQLite in WAL mode with synchronous=FULL (edge_agent/node/db.py): every commit
waits for an fsync of the WAL. A task served for a peer costs a device four commits: enqueue (on
arrival), claim_next, finish_task (result + outbox row) and outbox_done (once published); only
the enqueue waits for the disk (a restart repairs the loss of the others: the task is queued
and runs again, the outbox row is published again).
Measured on each disk, same run:
- raw fsync: a 4 KiB append to a file and its fsync, the unit of cost;
- per task: those four Store calls as the agent makes them against the same with synchronous=OFF
  (no fsync at all): the difference is what durability costs a task, and ÷ raw fsync says how
  many fsyncs it pays;
- group commit: 8 rows of 1 KiB written as 8 transactions against 1 transaction of 8 rows
  (plain SQLite, same pragmas): the ratio is what batching commits would save.

The slow device: a 128 MiB ext4 image on a loop device whose writes the blkio cgroup (v1,
blkio.throttle.write_iops_device) limits to --slow-iops IOs per second (default 200: an fsync
then waits for several throttled IOs: data, journal, flush; about a cheap microSD card's
latency). It caps a rate, it adds no fixed latency: blk-throttle lets iops × 100 ms of IOs
through at once after a quiet spell (Linux block/blk-throttle.c, its slice), so a lone commit can
pass free and only sustained commits pay: most commits of a series pass at once and every few
wait about 100 ms for the next slice. Every figure is therefore a mean over a series in a row
(its time ÷ its count, what a device pays in the long run), not a median, which would take the
free ones for the cost. Needs root and a free loop device; skipped otherwise. device-mapper
(dm-delay, which would add latency) is not available on this kernel (`dmsetup targets` fails).
Everything made is undone.

    python -m benchmarks.fsync_cost [--quick] [--slow-iops 200] [--no-slow] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from statistics import fmean as mean
from typing import Any

from benchmarks.common import Figure, load_average, log, print_figures

THROTTLE = Path("/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device")


def raw_fsync_ms(directory: Path, rounds: int) -> float:
    path = directory / f"fsync-{uuid.uuid4().hex[:8]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(rounds):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return mean(times)


def _task(i: int) -> Any:
    from edge_agent.wire.messages import Task

    return Task(task_id=uuid.uuid4().hex, job_id=uuid.uuid4().hex[:16], origin="edge-1", layer=1,
                role="propose", prompt=f"prompt {i} " + "words " * 150, max_tokens=96, created_at=time.time())


def store_task_ms(directory: Path, tasks: int, durable: bool) -> float:
    """Median milliseconds of the store commits a peer's task makes (queued, claimed, finished,
    its result acknowledged); the enqueue waits for the disk, unless durable is False."""
    from edge_agent.node.store import Store

    path = directory / f"store-{uuid.uuid4().hex[:8]}.db"
    store = Store(path, synchronous="FULL" if durable else "OFF")  # OFF: the same work, no disk wait
    result = b"r" * 600  # an answer of about a hundred words
    times = []
    try:
        for i in range(tasks):
            task = _task(i)
            t0 = time.perf_counter()
            store.enqueue(task)
            claimed = store.claim_next()
            assert claimed is not None
            store.finish_task(task.task_id, "dmoa/v1/to/edge-1/result", result)
            ((outbox_id, *_),) = store.outbox()
            store.outbox_done(outbox_id)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        store.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return mean(times)


def group_commit_ms(directory: Path, rounds: int, batch: int = 8) -> tuple[float, float]:
    """Milliseconds per row: one transaction per row, and one for the whole batch."""
    path = directory / f"group-{uuid.uuid4().hex[:8]}.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB)")
    row = b"p" * 1024
    single, grouped = [], []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(batch):
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO t(payload) VALUES (?)", (row,))
                db.execute("COMMIT")
            t1 = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            for _ in range(batch):
                db.execute("INSERT INTO t(payload) VALUES (?)", (row,))
            db.execute("COMMIT")
            t2 = time.perf_counter()
            single.append((t1 - t0) * 1000 / batch)
            grouped.append((t2 - t1) * 1000 / batch)
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return mean(single), mean(grouped)


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def slow_disk(iops: int) -> Iterator[Path]:
    """An ext4 file system on a loop device throttled to iops writes/s; all undone on exit."""
    if os.geteuid() != 0 or not THROTTLE.exists():
        raise RuntimeError("needs root and the cgroup v1 blkio throttle")
    work = Path(tempfile.mkdtemp(prefix="dmoa-bench-slow-"))
    image, mount = work / "disk.img", work / "mnt"
    device = majmin = ""
    try:
        with image.open("wb") as f:
            f.truncate(128 << 20)
        device = _run("losetup", "-f", "--show", str(image))
        _run("mkfs.ext4", "-q", device)
        mount.mkdir()
        _run("mount", device, str(mount))
        majmin = _run("lsblk", "-dno", "MAJ:MIN", device).strip()
        THROTTLE.write_text(f"{majmin} {iops}\n")
        yield mount
    finally:
        if majmin:
            THROTTLE.write_text(f"{majmin} 0\n")  # 0 removes the rule
        if mount.is_mount():
            subprocess.run(["umount", str(mount)], check=False)
        if device:
            subprocess.run(["losetup", "-d", device], check=False)
        image.unlink(missing_ok=True)
        if mount.exists():
            mount.rmdir()
        work.rmdir()


def measure(where: str, directory: Path, quick: bool) -> list[Figure]:
    slow = where != "this disk"
    # On the throttled device a series must span several 100 ms slices of blk-throttle (see
    # above) to measure its steady state, not the burst it lets through: 60 tasks there take
    # about two seconds; 8 commits per row cost about 0.3 s a round, hence fewer rounds.
    rounds = 20 if quick else 60
    groups = (4 if quick else 8) if slow else rounds // 2
    load_before = load_average()
    fsync = raw_fsync_ms(directory, rounds)
    full = store_task_ms(directory, rounds, durable=True)
    off = store_task_ms(directory, rounds, durable=False)
    single, grouped = group_commit_ms(directory, groups)
    load = f"{load_before} -> {load_average()}"
    log(f"  {where}: fsync {fsync:.2f} ms, task FULL {full:.2f} ms / OFF {off:.2f} ms, "
        f"commit per row {single:.2f} ms / grouped {grouped:.2f} ms")
    detail = {"raw_fsync_ms": round(fsync, 3), "durability_ms_per_task": round(full - off, 3),
              "fsyncs_per_task": round((full - off) / fsync, 2) if fsync > 0 else None, "load": load}
    return [
        Figure("5", f"store commits per task, synchronous=FULL, {where}", full, off, "ms",
               "same with synchronous=OFF", "", None, rounds, detail),
        Figure("5", f"commit per row vs 8 rows per commit, {where}", single, grouped, "ms/row",
               "group commit of 8", "", None, groups, {"load": load}),
    ]


def run(quick: bool = False, slow_iops: int = 200, with_slow: bool = True) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="dmoa-bench-fsync-", dir=os.environ.get("BENCH_DISK_DIR")) as d:
        figures = measure("this disk", Path(d), quick)
    if with_slow:
        try:
            with slow_disk(slow_iops) as mount:
                figures += measure(f"loop device at {slow_iops} write IOPS", mount, quick)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
            log(f"  slow device skipped: {err}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--slow-iops", type=int, default=200)
    parser.add_argument("--no-slow", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print_figures(run(args.quick, args.slow_iops, not args.no_slow), args.json)


if __name__ == "__main__":
    main()
