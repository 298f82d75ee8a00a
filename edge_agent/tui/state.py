"""Everything the TUI shows, as plain data folded from mesh messages.

No Textual, no I/O, no clock: every reducer takes the time it needs, so
tests and snapshots can replay any situation exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge_agent.tui.jobs import JobTracker
from edge_agent.tui.utilisation import Figures, figures
from edge_agent.wire.messages import Progress, Status

HISTORY = 40
"""Queue samples kept per device (one per status received)."""
STALE_S = 10.0
"""An online device not heard from for this long is shown as stale."""


@dataclass
class DeviceState:
    status: Status
    seen_at: float | None
    """Wall-clock time the device was last heard alive (None: never)."""
    history: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def presence(self, now: float) -> str:
        """online, stale or offline."""
        if not self.status.online:
            return "offline"
        if self.seen_at is not None and now - self.seen_at > STALE_S:
            return "stale"
        return "online"

    def age(self, now: float) -> float | None:
        return None if self.seen_at is None else max(0.0, now - self.seen_at)


class MeshState:
    def __init__(self) -> None:
        self.devices: dict[str, DeviceState] = {}
        self.jobs = JobTracker()
        self.identity = ""
        """The device whose broker we watch, once its agent announced itself."""
        self.connected = False
        self.connection_detail = ""
        self.revision = 0
        """Bumped on every change, so views redraw only when needed."""

    # -- reducers ---------------------------------------------------------------------
    def apply_status(self, status: Status, received_at: float, retained: bool = False) -> None:
        known = self.devices.get(status.device)
        if status.online:
            # A retained status may be old: date it by its own timestamp.
            seen: float | None = status.ts if retained and status.ts else received_at
        else:
            seen = known.seen_at if known is not None else (status.ts or None)
        if known is None:
            known = self.devices[status.device] = DeviceState(status, seen)
        else:
            known.status, known.seen_at = status, seen
        if status.online:
            known.history.append(status.queue)
        self.revision += 1

    def apply_progress(self, progress: Progress, received_at: float) -> None:
        if self.jobs.apply(progress, received_at) is not None:
            self.revision += 1

    def set_connection(self, connected: bool, detail: str = "") -> None:
        self.connected, self.connection_detail = connected, detail
        self.revision += 1

    def set_identity(self, device: str) -> None:
        self.identity = device
        self.revision += 1

    def mark_mine(self, job_id: str) -> None:
        self.jobs.mark_mine(job_id)
        self.revision += 1

    def clear_finished(self) -> int:
        cleared = self.jobs.clear_finished()
        self.revision += 1
        return cleared

    # -- views ------------------------------------------------------------------------
    def device_list(self) -> list[DeviceState]:
        return [self.devices[name] for name in sorted(self.devices)]

    def online_count(self) -> int:
        return sum(d.status.online for d in self.devices.values())

    def figures(self) -> Figures:
        statuses = [d.status for d in self.devices.values()]
        seen = [(j.origin, j.layers, j.proposers) for j in self.jobs.jobs.values()]
        return figures(statuses, seen)
