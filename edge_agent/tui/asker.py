"""Prompts submitted from the TUI, each followed to its answer on a daemon thread.

A SubmitClient blocks until the answer arrives, possibly minutes later. Textual's
thread workers run in asyncio's default executor, which is joined at exit, so a
pending answer would hold up quitting; a daemon thread does not. Results reach
the app as messages, like the feed's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from edge_agent.errors import EdgeAgentError
from edge_agent.tui.feed import Target
from edge_agent.tui.messages import AnswerReceived, SubmitFailed
from edge_agent.wire.messages import Answer


class Submitter(Protocol):
    """What the TUI needs of edge_agent.client.submit.SubmitClient."""

    device: str

    def submit(self, prompt: str, layers: int | None = None, proposers: int | None = None, policy: str = "",
               job_id: str | None = None, timeout_s: float = 300.0) -> Answer: ...

    def close(self) -> None: ...


class Asker:
    def __init__(self, target: Target, connect: Callable[[], Submitter], timeout_s: float = 300.0) -> None:
        self.target = target
        self.connect = connect
        self.timeout_s = timeout_s
        self._client: Submitter | None = None
        self._lock = threading.Lock()
        self._closed = False

    def ask(self, prompt: str, job_id: str, layers: int | None, proposers: int | None) -> None:
        """Submit in the background; an AnswerReceived or SubmitFailed follows."""
        thread = threading.Thread(target=self._run, args=(prompt, job_id, layers, proposers),
                                  name=f"tui-ask-{job_id[:8]}", daemon=True)
        thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _submitter(self) -> Submitter:
        # One connection for every prompt, made on first use (it waits for the agent's identity).
        with self._lock:
            if self._closed:
                raise EdgeAgentError("the TUI is closing")
            if self._client is None:
                self._client = self.connect()
            return self._client

    def _run(self, prompt: str, job_id: str, layers: int | None, proposers: int | None) -> None:
        try:
            answer = self._submitter().submit(prompt, layers, proposers, job_id=job_id, timeout_s=self.timeout_s)
        except EdgeAgentError as err:
            self.target.post_message(SubmitFailed(job_id, str(err)))
        else:
            self.target.post_message(AnswerReceived(answer))
