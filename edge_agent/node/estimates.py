"""Live estimates a device gossips: alpha (mean inference seconds), tokens/s,
lambda (its own users' prompt rate) and rho, the Theorem 1 utilisation.

rho is this board's figure, from local measurements only:
    rho = J̄ · lambda · alpha
with J̄ = ((k+1)·M + 1) averaged over the prompts of the rate window, each
with the (M, k) it actually ran with (after admission control; 0 for a
refused prompt), or of the configured defaults when the window holds no
prompt. It is Remark 1's utilisation of this board if every user behaved like
this one; the mesh-wide rho (mean lambda, alpha_max) is computed from all the
statuses by edge_agent.theory.stability.mesh_load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from edge_agent.theory.stability import inferences_per_prompt


class Estimator:
    def __init__(self, layers: int = 1, proposers: int = 2, ewma_weight: float = 0.2,
                 rate_window_s: float = 300.0, min_span_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.default_inferences = inferences_per_prompt(layers, proposers)
        self.weight = ewma_weight
        self.window_s = rate_window_s
        self.min_span_s = min_span_s
        self.alpha: float | None = None
        self.tokens_per_s: float | None = None
        self._clock = clock
        self._arrivals: deque[tuple[float, int]] = deque()  # (time, inferences it runs)
        self._started = clock()
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

    def record_arrival(self, inferences: int, now: float | None = None) -> None:
        """A prompt from this device's user, costing `inferences` (J of the (M, k) it runs; 0 if refused)."""
        with self._lock:
            self._arrivals.append((self._clock() if now is None else now, inferences))

    def _window(self, now: float | None) -> tuple[list[int], float]:
        """The window's prompts (their J) and its length; caller holds the lock."""
        now = self._clock() if now is None else now
        while self._arrivals and now - self._arrivals[0][0] > self.window_s:
            self._arrivals.popleft()
        # A young agent divides by at least min_span_s: two prompts in its first seconds
        # are not a rate of one per second, and must not trip admission control.
        span = min(self.window_s, max(now - self._started, self.min_span_s))
        return [j for _, j in self._arrivals], span

    def lam(self, now: float | None = None) -> float:
        """Arrivals per second over the window (or since start, if younger)."""
        with self._lock:
            arrivals, span = self._window(now)
        return len(arrivals) / span

    def inferences(self, now: float | None = None) -> float:
        """J̄: mean inferences per prompt of the window's prompts, else the configured defaults' J."""
        with self._lock:
            arrivals, _ = self._window(now)
        return sum(arrivals) / len(arrivals) if arrivals else float(self.default_inferences)

    def rho(self, now: float | None = None) -> float | None:
        """J̄ · lambda · alpha (see the module docstring); None until alpha is measured."""
        if self.alpha is None:
            return None
        with self._lock:
            arrivals, span = self._window(now)
        return sum(arrivals) / span * self.alpha
