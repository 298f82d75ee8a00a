"""The model worker: one child process owning the engine, fed one request at a time.

A crash of the child (llama.cpp abort, out-of-memory kill) surfaces in the
agent as WorkerCrashed; the agent restarts the worker and retries the task
once. The child exits by itself when the agent dies (its pipe closes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from edge_agent.engine.base import Completion, Engine, EngineSpec, Request, TokenHook
from edge_agent.errors import EdgeAgentError, ModelError

POLL_S = 0.2
PR_SET_PDEATHSIG = 1



def build_engine(spec: EngineSpec) -> Engine:
    """Construct the engine a spec names; llama_cpp is imported only for 'llama'."""
    if spec.kind == "fake":
        from edge_agent.engine.fake import FakeEngine

        return FakeEngine(spec)
    from edge_agent.engine.llama import LlamaEngine

    return LlamaEngine(spec)

class WorkerCrashed(ModelError):
    """The worker process died while loading or serving."""


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the agent dies, so a killed agent never
    leaves a model (and its memory) behind while its successor loads another."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the closed pipe still ends the worker after its current request


def _serve(conn: Connection, spec: EngineSpec) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when the worker stops
    try:
        engine = build_engine(spec)
    except Exception as err:  # report any load failure to the agent, which names it
        conn.send(("error", f"cannot load model: {err}"))
        return
    conn.send(("ready", engine.n_ctx))
    while True:
        try:
            request: Request = conn.recv()
        except (EOFError, OSError):
            return
        reply: tuple[str, Any]
        def token(piece: str) -> None:
            conn.send(("token", piece))

        try:
            reply = ("ok", engine.complete(request, token if request.stream else None))
        except EdgeAgentError as err:
            reply = ("error", str(err))
        except Exception as err:  # an engine bug must fail the task, not the worker
            reply = ("error", f"{type(err).__name__}: {err}")
        try:
            conn.send(reply)
        except (OSError, BrokenPipeError):
            return  # the agent is gone


class ModelWorker:
    def __init__(self, spec: EngineSpec, load_timeout_s: float = 300.0) -> None:
        self.spec = spec
        self.load_timeout_s = load_timeout_s
        self.restarts = 0
        self.n_ctx = spec.n_ctx
        self._proc: Any = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.spec), daemon=True, name="model-worker")
        self._proc.start()
        child.close()
        self._conn = parent
        kind, value = self._wait(self.load_timeout_s, "loading the model")
        if kind != "ready":
            self.stop()
            raise ModelError(str(value))
        self.n_ctx = int(value)

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(timeout=2)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
            self._proc = None

    def complete(self, request: Request, timeout_s: float | None = None,
                 on_token: TokenHook | None = None) -> Completion:
        conn = self._conn
        if conn is None:
            raise WorkerCrashed("model worker is not running")
        try:
            conn.send(request)
        except (OSError, BrokenPipeError):
            raise WorkerCrashed("model worker died") from None
        started = time.monotonic()
        while True:
            left = None if timeout_s is None else max(timeout_s - (time.monotonic() - started), POLL_S)
            kind, value = self._wait(left, "inference")
            if kind != "token":
                break
            if on_token is not None:
                on_token(value)
        if kind == "ok":
            completion: Completion = value
            return completion
        raise ModelError(str(value))

    def _wait(self, timeout_s: float | None, what: str) -> tuple[str, Any]:
        # Local references: stop(), called by the agent's shutdown from another thread, closes the
        # pipe and drops both while an inference waits here. That is the worker gone (the task is
        # requeued at the next start), not a bug that dead-letters the task.
        conn, proc = self._conn, self._proc
        if conn is None or proc is None:
            raise WorkerCrashed(f"model worker stopped before {what}")
        waited = 0.0
        while True:
            try:
                if conn.poll(POLL_S):
                    kind, value = conn.recv()
                    return kind, value
            except (EOFError, OSError):
                raise WorkerCrashed(f"model worker died during {what} (exit code {proc.exitcode})") from None
            if not proc.is_alive():
                raise WorkerCrashed(f"model worker died during {what} (exit code {proc.exitcode})")
            waited += POLL_S
            if timeout_s is not None and waited >= timeout_s:
                proc.kill()
                raise WorkerCrashed(f"model worker took over {timeout_s:.0f} s for {what}; killed")
