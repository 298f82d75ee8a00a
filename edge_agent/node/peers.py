"""The peer table: what this device knows of the others, from their retained status."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from edge_agent.theory.peerchoice import PeerLoad
from edge_agent.wire.messages import Status


@dataclass(frozen=True)
class PeerEntry:
    status: Status
    seen: float  # local monotonic time of the last status heard


class PeerTable:
    """Thread-safe map of device -> last status. A peer is live when its last
    status says online and arrived less than stale_s ago: a board that loses
    power never sends its will, so silence counts as offline too."""

    def __init__(self, self_device: str, stale_s: float) -> None:
        self.self_device = self_device
        self.stale_s = stale_s
        self._lock = threading.Lock()
        self._peers: dict[str, PeerEntry] = {}

    def update(self, status: Status, now: float | None = None) -> None:
        with self._lock:
            self._peers[status.device] = PeerEntry(status, time.monotonic() if now is None else now)

    def is_live(self, device: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._peers.get(device)
        return entry is not None and entry.status.online and now - entry.seen < self.stale_s

    def live(self, now: float | None = None) -> list[Status]:
        """Live peers, this device excluded, ordered by device id."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entries = sorted(self._peers.items())
        return [
            e.status for d, e in entries
            if d != self.self_device and e.status.online and now - e.seen < self.stale_s
        ]

    def loads(self, now: float | None = None) -> list[PeerLoad]:
        return [
            PeerLoad(s.device, s.queue, s.alpha if s.alpha is not None else 1.0)
            for s in self.live(now)
        ]

    def expected_wait(self, device: str) -> float:
        """Seconds until a task sent now would be answered: (queue + 1) x alpha."""
        with self._lock:
            entry = self._peers.get(device)
        if entry is None or entry.status.alpha is None:
            return 0.0
        return (entry.status.queue + 1) * entry.status.alpha

    def snapshot(self) -> dict[str, PeerEntry]:
        with self._lock:
            return dict(self._peers)
