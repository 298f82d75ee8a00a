"""The FCFS server of the paper's queueing model: one thread takes the oldest queued task to the
model worker and commits its result, a peer's into the outbox and the device's own straight to
its coordinator."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from edge_agent.config import AgentConfig
from edge_agent.engine.base import Request, TokenHook
from edge_agent.engine.worker import ModelWorker, WorkerCrashed
from edge_agent.errors import DiskFull, ModelError, StorageError
from edge_agent.node.coordinator import Coordinator
from edge_agent.node.diskroom import DiskRoom
from edge_agent.node.estimates import Estimator
from edge_agent.node.store import Store
from edge_agent.wire import topics
from edge_agent.wire.messages import Result, Task
from edge_agent.wire.mqtt import MeshClient
from edge_agent.wire.streaming import ChunkPublisher

log = logging.getLogger(__name__)
# How long the consumer sleeps with an empty queue before it looks at the worker again.
IDLE_S = 1.0


def refusal(task: Task, device: str, error: str) -> Result:
    """A failed result for a task this device will not (or could not) answer."""
    return Result(task_id=task.task_id, job_id=task.job_id, device=device, layer=task.layer, role=task.role,
                  ok=False, error=error, secret=task.secret)


class Consumer:
    def __init__(self, cfg: AgentConfig, store: Store, worker: ModelWorker, coordinator: Coordinator,
                 estimator: Estimator, room: DiskRoom, client: MeshClient, stop: threading.Event,
                 fail: Callable[[Exception], None], changed: Callable[[], None]) -> None:
        self.cfg = cfg
        self.store = store
        self.worker = worker
        self.coordinator = coordinator
        self.estimator = estimator
        self.room = room
        self.client = client
        self._stop = stop
        self._fail = fail
        self._changed = changed
        self.current = ""
        """What the worker is doing now ("" when idle), for the status."""
        self.completed = 0
        self.dead_letters = 0
        self._restart_failures = 0

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except DiskFull:
                self.room.filled()
                self.room.wait(self._stop)
            except StorageError as err:  # nothing sound is left to do
                log.exception("the store failed under the FCFS consumer")
                self._fail(err)
                return
            except Exception:  # a bug outside any one task: keep the queue moving, slowly
                log.exception("the FCFS consumer failed a step")
                self._stop.wait(1.0)

    def step(self) -> None:
        if not self.worker.alive and not self.restart_worker("model worker is not running"):
            return
        self.store.tasks_ready.clear()  # before looking: a task queued from now on sets it again
        claimed = self.store.claim_next()
        if claimed is None:
            self.store.tasks_ready.wait(IDLE_S)
            return
        task, received_at = claimed
        self.current = f"{task.role} {task.job_id} layer {task.layer}"
        self._changed()
        try:
            result = self._infer(task, time.time() - received_at)
        except StorageError:
            raise
        except Exception as err:  # a task that trips a bug fails alone; the queue goes on
            log.exception("task %s failed unexpectedly; it is dead-lettered", task.task_id)
            self.store.add_dead_letter(topics.task(self.cfg.device), task.encode(), f"{type(err).__name__}: {err}")
            self.dead_letters += 1
            result = refusal(task, self.cfg.device, f"internal error: {type(err).__name__}")
        finally:
            self.current = ""
        if result is None:
            return  # stopping: the task stays 'running' and is requeued at the next start
        while True:
            try:
                if task.origin == self.cfg.device:
                    self.coordinator.finish_own(task.task_id, result)
                else:
                    self.store.finish_task(task.task_id, topics.result(task.origin), result.encode())
                break
            except DiskFull:  # hold the answer until there is room; the task stays 'running'
                self.room.filled()
                if not self.room.wait(self._stop):
                    return
        self.completed += 1
        self._changed()

    def restart_worker(self, reason: str) -> bool:
        """Restart the model worker; after a failed restart wait (doubling, up to a minute)."""
        if self._stop.is_set():
            return False
        log.error("%s; restarting it", reason)
        try:
            self.worker.restart()
        except ModelError as err:
            self._restart_failures += 1
            pause = min(2.0 ** self._restart_failures, 60.0)
            log.error("model worker cannot restart (%s); next try in %.0f s", err, pause)
            self._stop.wait(pause)
            return False
        self._restart_failures = 0
        return True

    def _infer(self, task: Task, waited: float) -> Result | None:
        on_token = self._chunks(task)
        request = Request(task.prompt, task.references, task.instruction, task.max_tokens,
                          conversation=[(t.role, t.content) for t in task.messages],
                          temperature=task.temperature, stream=on_token is not None)
        base = Result(task_id=task.task_id, job_id=task.job_id, device=self.cfg.device, layer=task.layer,
                      role=task.role, ok=False, queue_wait_s=round(waited, 3), secret=task.secret)
        for attempt in (1, 2):
            try:
                done = self.worker.complete(request, timeout_s=self.cfg.inference_timeout_s, on_token=on_token)
            except WorkerCrashed as err:
                if self._stop.is_set():
                    return None
                if not self.restart_worker(f"model worker crashed ({err})"):
                    return replace(base, error=f"model worker cannot restart after: {err}")
                if attempt == 2:
                    return replace(base, error=f"model worker crashed twice: {err}")
                continue
            except ModelError as err:
                return replace(base, error=str(err))
            self.estimator.record_inference(done.seconds, done.completion_tokens)
            return replace(base, ok=True, text=done.text, seconds=round(done.seconds, 3),
                           prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens,
                           truncated=done.truncated)
        raise AssertionError("unreachable")  # pragma: no cover

    def _chunks(self, task: Task) -> TokenHook | None:
        """A hook streaming this task's tokens, if it is the final answer of a job of ours
        whose client asked for them (the secret comes from our own record of the submit)."""
        if not task.stream_to or task.origin != self.cfg.device:
            return None
        submit = self.store.submit_of(task.job_id)
        if submit is None or not submit.stream:
            return None
        return ChunkPublisher(self.client, self.cfg.device, task.stream_to, task.job_id, submit.secret)
