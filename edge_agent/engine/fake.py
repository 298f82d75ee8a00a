"""A fixed-service-time engine: no model, inference takes a known time.

Used by unit tests, queueing experiments (each inference takes alpha seconds,
deterministic or exponential) and UI tests. Its answers name the device and
echo the start of the prompt, so tests can see where an answer came from.
"""

from __future__ import annotations

import random
import time

from edge_agent.engine.base import Completion, EngineSpec, Request, TokenHook
from edge_agent.engine.prompts import WhitespaceCounter, build_messages


class FakeEngine:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.n_ctx = spec.n_ctx
        self._rng = random.Random(spec.seed if spec.seed >= 0 else None)
        self._counter = WhitespaceCounter()

    def service_time(self) -> float:
        if self.spec.fake_distribution == "exponential":
            return self._rng.expovariate(1.0 / self.spec.fake_seconds) if self.spec.fake_seconds > 0 else 0.0
        return self.spec.fake_seconds

    def complete(self, request: Request, on_token: TokenHook | None = None) -> Completion:
        started = time.monotonic()
        built = build_messages(
            request.prompt, request.references, request.instruction, self.n_ctx,
            request.max_tokens, self._counter, request.conversation,
        )
        head = " ".join(request.prompt.split()[:8])
        kind = f"aggregate of {len(request.references)}" if request.references else "answer"
        text = f"{kind} by {self.spec.device or 'fake'}: {head}"
        if request.stream and on_token is not None:
            # The service time spread over the words, so a stream has something to show.
            words = text.split(" ")
            for i, word in enumerate(words):
                _pause(self.service_time() / len(words))
                on_token(word if i == 0 else " " + word)
        else:
            _pause(self.service_time())
        prompt_tokens = sum(self._counter.count(m["content"]) for m in built.messages)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=self._counter.count(text),
            seconds=time.monotonic() - started,
            truncated=built.truncated,
        )


def _pause(seconds: float) -> None:
    # An engine at 0 s makes no sleep call at all: under libfaketime with a stepped clock (the
    # clock-step fault test) even time.sleep(0) fails with EINVAL.
    if seconds > 0:
        time.sleep(seconds)
