"""The API's one connection to the board's broker, and each request's job on it.

SubmitClient is thread-based (paho); each request's submit runs in a pool
thread sized to the concurrency limit, and its progress, tokens and answer
reach the request's coroutine through an asyncio queue.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from edge_agent.client.submit import SubmitClient, new_job_id
from edge_agent.errors import EdgeAgentError
from edge_agent.wire.messages import Progress, Status, Turn

Event = tuple[str, object]
"""('progress', Progress) | ('token', str) | ('answer', Answer) | ('error', EdgeAgentError)"""


@dataclass(frozen=True)
class JobSpec:
    device: str
    layers: int | None
    proposers: int | None
    messages: list[Turn]
    max_tokens: int
    temperature: float | None
    stream: bool


class Job:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.events: asyncio.Queue[Event] = asyncio.Queue()


class MeshBackend:
    def __init__(self, client: SubmitClient, timeout_s: float, workers: int) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="api-job")
        self._lock = threading.Lock()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        """(origin, done|failed|degraded) -> jobs heard finishing since the service started."""
        client.watch = self._count

    @property
    def local(self) -> str:
        return self.client.local

    def statuses(self) -> dict[str, Status]:
        return self.client.statuses()

    def connected(self) -> bool:
        return self.client.connected

    def start(self, spec: JobSpec) -> Job:
        job = Job(new_job_id())
        loop = asyncio.get_running_loop()

        def put(kind: str, value: object) -> None:
            loop.call_soon_threadsafe(job.events.put_nowait, (kind, value))

        def run() -> None:
            prompt = spec.messages[-1].content
            try:
                answer = self.client.submit(
                    prompt, spec.layers, spec.proposers, job_id=job.job_id, timeout_s=self.timeout_s,
                    device=spec.device, messages=spec.messages, max_tokens=spec.max_tokens,
                    temperature=spec.temperature, on_progress=lambda p: put("progress", p),
                    on_token=(lambda t: put("token", t)) if spec.stream else None)
            except EdgeAgentError as err:
                put("error", err)
                return
            put("answer", answer)

        self._pool.submit(run)
        return job

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def _count(self, progress: Progress) -> None:
        if progress.event in ("done", "failed"):
            with self._lock:
                self.outcomes[(progress.origin, progress.event)] += 1
                if progress.degraded:
                    self.outcomes[(progress.origin, "degraded")] += 1

    def outcome_counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.outcomes)
