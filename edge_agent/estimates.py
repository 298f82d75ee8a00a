"""Live estimates a device gossips: alpha (mean inference seconds), tokens/s,
lambda (its own users' prompt rate) and rho, the Theorem 1 utilisation."""

from __future__ import annotations

import threading
import time
from collections import deque

from edge_agent.stability_core import utilisation


class Estimator:
    def __init__(self, ewma_weight: float = 0.2, rate_window_s: float = 300.0) -> None:
        self.weight = ewma_weight
        self.window_s = rate_window_s
        self.alpha: float | None = None
        self.tokens_per_s: float | None = None
        self._arrivals: deque[float] = deque()
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def record_inference(self, seconds: float, completion_tokens: int) -> None:
        with self._lock:
            self.alpha = seconds if self.alpha is None else (
                self.weight * seconds + (1 - self.weight) * self.alpha
            )
            if seconds > 0 and completion_tokens > 0:
                rate = completion_tokens / seconds
                self.tokens_per_s = rate if self.tokens_per_s is None else (
                    self.weight * rate + (1 - self.weight) * self.tokens_per_s
                )

    def record_arrival(self, now: float | None = None) -> None:
        with self._lock:
            self._arrivals.append(time.monotonic() if now is None else now)

    def lam(self, now: float | None = None) -> float:
        """Arrivals per second over the window (or since start, if younger)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._arrivals and now - self._arrivals[0] > self.window_s:
                self._arrivals.popleft()
            span = min(self.window_s, max(now - self._started, 1.0))
            return len(self._arrivals) / span

    def rho(self, layers: int, proposers: int, now: float | None = None) -> float | None:
        if self.alpha is None:
            return None
        return utilisation(layers, proposers, self.lam(now), self.alpha)
