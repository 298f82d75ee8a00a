"""The model worker stopped while an inference waits on it: what the agent's shutdown does when a
board reboots mid-task. The wait must end as the worker being gone (the agent then leaves the task
to be requeued at its next start), never as an unexpected error that dead-letters the task."""

from __future__ import annotations

import threading

from edge_agent.engine.base import EngineSpec, Request
from edge_agent.engine.worker import ModelWorker, WorkerCrashed


def test_stopping_the_worker_mid_inference_ends_the_wait_as_a_crash():
    worker = ModelWorker(EngineSpec(kind="fake", fake_seconds=30.0), load_timeout_s=60)
    worker.start()
    waiting = threading.Event()
    wait = worker._wait

    def entered(*args):
        waiting.set()
        return wait(*args)
    worker._wait = entered
    raised: list[BaseException] = []

    def infer() -> None:
        try:
            worker.complete(Request("Name a colour."), timeout_s=60)
        except BaseException as err:  # noqa: BLE001 - the test looks at what came out
            raised.append(err)
    thread = threading.Thread(target=infer)
    thread.start()
    try:
        assert waiting.wait(30), "the inference never started waiting on the worker"
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], WorkerCrashed), raised
