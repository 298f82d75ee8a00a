"""Background processes of the lab, each known by a pid file and a marker in its command line,
so `down` stops only what the lab started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def spawn(argv: list[str], log: Path, pid_file: Path, preexec: Callable[[], None] | None = None,
          env: dict[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=preexec, env=env)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def read_pid(pid_file: Path, marker: str) -> int:
    """The pid in pid_file if that process still runs and its command line holds marker, else 0."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    cmdline = b""
    for _ in range(50):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return 0
        if cmdline or not alive(pid):
            break
        # Empty while the process replaces its program (execve): a board's supervisor does so
        # twice as it starts (unshare, then sh), and was taken for stopped. No event says when
        # the new command line is in place; it takes microseconds.
        time.sleep(0.01)
    return pid if marker.encode() in cmdline.replace(b"\0", b" ") and alive(pid) else 0


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        reap(pid)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after timeout_s."""
    if not pid:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(pid, wait_s):
            return
