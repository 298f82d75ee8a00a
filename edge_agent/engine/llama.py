"""llama-cpp-python behind the engine interface.

Runs only inside the worker process: llama.cpp aborts the whole process on
internal assertion failures and a Llama object is not thread-safe, so the
agent keeps it at arm's length. The chat template is the GGUF's own.
"""

from __future__ import annotations

import os
import time
from typing import Any

from edge_agent.engine.base import Completion, EngineSpec, Request, TokenHook
from edge_agent.engine.prompts import build_messages
from edge_agent.errors import ModelError


class LlamaCounter:
    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def count(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def truncate(self, text: str, tokens: int) -> str:
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[: max(tokens, 0)]
        return bytes(self._llm.detokenize(ids)).decode("utf-8", errors="ignore")


class LlamaEngine:
    def __init__(self, spec: EngineSpec) -> None:
        from llama_cpp import Llama

        if not os.path.isfile(spec.model_path):
            raise ModelError(f"model file not found: {spec.model_path}")
        self.spec = spec
        self.n_ctx = spec.n_ctx
        threads = spec.n_threads or len(os.sched_getaffinity(0))
        self._llm = Llama(
            model_path=spec.model_path,
            n_ctx=spec.n_ctx,
            n_threads=threads,
            # Prompt evaluation too: llama-cpp-python's default is every CPU of the machine
            # (os.cpu_count(), llama.py), which overrides the configured thread budget and, on a
            # board whose other cores are busy, makes OpenMP's threads wait on each other.
            n_threads_batch=threads,
            n_gpu_layers=spec.n_gpu_layers,
            seed=spec.seed if spec.seed >= 0 else 0xFFFFFFFF,
            verbose=False,
        )
        self._counter = LlamaCounter(self._llm)

    def complete(self, request: Request, on_token: TokenHook | None = None) -> Completion:
        started = time.monotonic()
        built = build_messages(
            request.prompt, request.references, request.instruction, self.n_ctx,
            request.max_tokens, self._counter, request.conversation,
        )
        temperature = self.spec.temperature if request.temperature is None else request.temperature
        if request.stream and on_token is not None:
            text, prompt_tokens, completion_tokens = self._stream(built.messages, request.max_tokens,
                                                                  temperature, on_token)
        else:
            out: Any = self._llm.create_chat_completion(
                messages=built.messages,  # type: ignore[arg-type]  # plain role/content dicts
                max_tokens=request.max_tokens,
                temperature=temperature,
            )
            usage = out.get("usage") or {}
            text = (out["choices"][0]["message"].get("content") or "").strip()
            prompt_tokens = int(usage.get("prompt_tokens", 0))
            completion_tokens = int(usage.get("completion_tokens", 0))
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=time.monotonic() - started,
            truncated=built.truncated,
        )

    def _stream(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                on_token: TokenHook) -> tuple[str, int, int]:
        """Generate piece by piece; the text handed on is exactly the answer's, leading blanks dropped."""
        pieces: list[str] = []
        generated = 0
        chunks: Any = self._llm.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]  # plain role/content dicts, as above
            max_tokens=max_tokens, temperature=temperature, stream=True,
        )
        for chunk in chunks:
            piece = chunk["choices"][0].get("delta", {}).get("content") or ""
            if not piece:
                continue
            generated += 1  # llama-cpp-python yields one piece per sampled token
            if not pieces:
                piece = piece.lstrip()
                if not piece:
                    continue
            pieces.append(piece)
            on_token(piece)
        # Streaming reports no usage: the context holds the prompt and the reply.
        return "".join(pieces).rstrip(), max(int(self._llm.n_tokens) - generated, 0), generated
