"""What an agent does while its store's disk is full: refuse new work plainly, keep everything
already acknowledged, and serve again by itself once there is room.

Submits and peers' tasks that cannot be stored are refused with a message that says why (the
agent acknowledges them: the refusal is their outcome). Results cannot be refused, so their
delivery is parked, unacknowledged, and run again once the disk takes writes; if the agent stops
first, the broker hands them back at the next start. A finished inference waits in memory for
room, its task still 'running' in the store, so a crash meanwhile runs it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from edge_agent.node.store import Store

log = logging.getLogger(__name__)
PROBE_S = 1.0


class DiskRoom:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._room = threading.Event()
        self._room.set()
        self._since: float | None = None
        self._probed = 0.0
        self._parked: list[Callable[[], None]] = []

    @property
    def full(self) -> bool:
        return not self._room.is_set()

    def alert(self) -> str:
        since = self._since
        if since is None:
            return ""
        return (f"the disk of the store is full since {time.strftime('%H:%M:%S', time.localtime(since))}: "
                "new prompts and tasks are refused until it has room")

    def filled(self, parked: Callable[[], None] | None = None) -> None:
        """The disk turned out full; park a delivery to run again once there is room."""
        with self._lock:
            if parked is not None:
                self._parked.append(parked)
            if self._since is None:
                self._since = time.time()
                self._room.clear()
                log.error("the store's disk is full: refusing new work, keeping what was acknowledged")

    def wait(self, stop: threading.Event) -> bool:
        """Block until there is room (True) or the agent stops (False)."""
        while not self._room.wait(PROBE_S):
            if stop.is_set():
                return False
        return not stop.is_set()

    def check(self) -> None:
        """From the ticker: probe the disk while full; once it takes writes, run what was parked."""
        now = time.monotonic()
        if not self.full or now - self._probed < PROBE_S:
            return
        self._probed = now
        if not self._store.writable():
            return
        with self._lock:
            parked, self._parked = self._parked, []
            self._since = None
            self._room.set()
        log.warning("the store's disk has room again; serving (%d parked deliveries)", len(parked))
        for retry in parked:
            retry()
