"""Helpers for the processes tests start."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """preexec_fn for a command a test interrupts with SIGINT, as Ctrl-C would: a test session
    started in the background (`make test &`) inherits SIGINT ignored, and so would the command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
