"""Processes started as their own session leaders, handled by process group: a RabbitMQ node is
a script with beam.smp, erl_child_setup and inet_gethost under it, all in the group it leads."""

from __future__ import annotations

import os
import time

import psutil


def wait_gone(pids: list[int], timeout_s: float) -> None:
    """Wait until no live process is left in any of these process groups (beam.smp, erl_child_setup,
    inet_gethost: a node is a script and its children, all in the group its script leads)."""
    deadline = time.monotonic() + timeout_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    while members(pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def members(pgids: list[int]) -> list[int]:
    """The live (non-zombie) processes in these process groups."""
    wanted = {p for p in pgids if p}
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.info["pid"]) in wanted and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.info["pid"])
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def signal_group(pid: int, sig: int) -> None:
    # Each process was started as its own session leader, so its group id is its pid: the
    # whole group goes (an agent's model worker too), and a pid reused by an unrelated
    # process, which leads no group of that id, is left alone.
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def alive(pid: int) -> bool:
    """True while pid runs and is not a zombie (a child of ours that ended is reaped here)."""
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
