"""A one-line progress bar on stderr: redrawn in place on a terminal, one line
per finished prompt otherwise (logs, CI)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, total: int, done: int = 0, stream: TextIO | None = None,
                 width: int = 24) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = done
        self.failed = 0
        self.running = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()

    def line(self) -> str:
        filled = round(self.width * min(self.done, self.total) / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = int(time.monotonic() - self.started)
        text = (f"{self.label:<6} [{bar}] {self.done}/{self.total} done, {self.running} running"
                f", elapsed {elapsed // 60}:{elapsed % 60:02d}")
        return text + (f", {self.failed} failed" if self.failed else "")

    def _draw(self, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def start(self) -> None:
        with self._lock:
            self._draw()

    def submitted(self) -> None:
        with self._lock:
            self.running += 1
            if self.tty:
                self._draw()

    def finished(self, ok: bool) -> None:
        with self._lock:
            self.running -= 1
            if ok:
                self.done += 1
            else:
                self.failed += 1
            self._draw()

    def close(self) -> None:
        with self._lock:
            if self.tty:
                self._draw(final=True)
