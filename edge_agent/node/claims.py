"""Noticing one device id claimed by two boards at once, as a cloned SD card does.

Every agent draws an `instance` at start and puts it in its status. A restart shows up as one
instance giving way to the next; two live boards with one id show up as statuses that switch
back to an instance seen shortly before. Their bridges also knock each other off peers' brokers
(same client id), so each board's statuses come through in turns and the switch-backs follow.
"""

from __future__ import annotations

import threading


class ClaimWatch:
    def __init__(self, window_s: float = 60.0, hold_s: float = 300.0) -> None:
        self.window_s = window_s
        """How recently an instance must have been seen for a switch back to it to count."""
        self.hold_s = hold_s
        """How long a conflict is reported after its last evidence."""
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}
        self._seen: dict[str, dict[str, float]] = {}
        self._conflicts: dict[str, float] = {}

    def observe(self, device: str, instance: str, online: bool, now: float) -> bool:
        """Record one status; True when it reveals a conflict not reported yet."""
        if not instance:
            return False  # an agent too old to say
        with self._lock:
            seen = self._seen.setdefault(device, {})
            if not online:
                seen.pop(instance, None)  # a clean stop or a will: this instance is gone
                return False
            last = self._last.get(device)
            revealed = False
            if last not in (None, instance) and now - seen.get(instance, -1e18) <= self.window_s:
                revealed = now - self._conflicts.get(device, -1e18) > self.hold_s
                self._conflicts[device] = now
            seen[instance] = now
            self._last[device] = instance
            for old in [i for i, t in seen.items() if now - t > self.window_s]:
                del seen[old]
            return revealed

    def conflicts(self, now: float) -> list[str]:
        """Device ids with two live claimants in the last hold_s seconds."""
        with self._lock:
            return sorted(d for d, t in self._conflicts.items() if now - t <= self.hold_s)
