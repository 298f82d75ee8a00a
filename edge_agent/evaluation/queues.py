"""Time-average queue size, the paper's "avg queue size".

Reconstructed from the records by Little's law on each device: a task counts in
a device's queue (queued or running, as the status heartbeat counts it) from the
moment the device stores it until its inference ends, i.e. for queue_wait_s +
seconds. Integrated over the run's window and divided by the window, that sum is
exactly the device's time-average queue size; averaging over the n devices of
the mesh (idle ones count as 0) gives the mesh figure, as the paper's reference
code averages its per-device time averages.

The window of one session of a run is [first prompt submitted, last answer
received]; a resumed run adds its sessions' windows.

A sampler of the devices' heartbeats runs alongside as a cross-check; it also
sees work the run did not submit (other users' prompts), which the records
cannot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.evaluation.records import ConfigRecords


@dataclass(frozen=True)
class QueueStats:
    mean: float
    """Time-average number of tasks per device (queued + running), over all devices."""
    waiting_mean: float
    """The same, counting only tasks waiting (not the one being served)."""
    window_s: float
    devices: int
    per_device: dict[str, float] = field(default_factory=dict)


def windows(records: ConfigRecords) -> dict[str, tuple[float, float]]:
    """Each session's [first submission, last answer]."""
    spans: dict[str, tuple[float, float]] = {}
    for job in records.jobs:
        start, end = spans.get(job.session, (job.submitted_at, job.answered_at))
        spans[job.session] = (min(start, job.submitted_at), max(end, job.answered_at))
    return spans


def time_average_queue(records: ConfigRecords) -> QueueStats | None:
    """None when there is nothing recorded to average over."""
    spans = windows(records)
    window = sum(end - start for start, end in spans.values())
    devices = max((job.devices for job in records.jobs), default=0)
    if window <= 0 or devices < 1:
        return None
    busy: dict[str, float] = {}
    waiting = 0.0
    for inference in records.inferences:
        busy[inference.device] = busy.get(inference.device, 0.0) + inference.queue_wait_s + inference.seconds
        waiting += inference.queue_wait_s
    devices = max(devices, len(busy))
    per_device = {d: busy[d] / window for d in sorted(busy)}
    return QueueStats(mean=sum(busy.values()) / (devices * window), waiting_mean=waiting / (devices * window),
                      window_s=window, devices=devices, per_device=per_device)


class QueueSampler:
    """Reads every device's last reported queue depth at a fixed interval."""

    def __init__(self, read: Callable[[str], int | None], devices: list[str], session: str,
                 interval_s: float = 0.5) -> None:
        self._read = read
        self.devices = devices
        self.session = session
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples

    def _run(self) -> None:
        while not self._stop.is_set():
            queues = {d: self._read(d) for d in self.devices}
            self.samples.append({"session": self.session, "t": round(time.time(), 3),
                                 "queues": {d: q for d, q in queues.items() if q is not None}})
            self._stop.wait(self.interval_s)


def sampled_mean(samples: list[dict[str, Any]], spans: dict[str, tuple[float, float]] | None = None
                 ) -> float | None:
    """Mean over samples of the mean queue over devices (samples are evenly spaced),
    keeping only samples inside their session's window when the windows are given."""
    def inside(sample: dict[str, Any]) -> bool:
        if spans is None:
            return True
        span = spans.get(str(sample.get("session")))
        return span is not None and span[0] <= float(sample.get("t", 0)) <= span[1]

    means = [sum(s["queues"].values()) / len(s["queues"]) for s in samples
             if isinstance(s.get("queues"), dict) and s["queues"] and inside(s)]
    return sum(means) / len(means) if means else None
