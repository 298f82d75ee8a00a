"""The engine interface every model backend implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

TokenHook = Callable[[str], None]


@dataclass(frozen=True)
class Request:
    prompt: str
    references: list[str] = field(default_factory=list)
    instruction: str = ""
    max_tokens: int = 256
    conversation: list[tuple[str, str]] = field(default_factory=list)
    """(role, content) turns; empty means the prompt alone."""
    temperature: float | None = None
    stream: bool = False
    """Hand each piece of text to the token hook as it is generated."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    truncated: bool = False


@dataclass(frozen=True)
class EngineSpec:
    """Everything a worker process needs to build its engine (picklable)."""

    kind: str  # "llama" | "fake"
    model_path: str = ""
    model_name: str = ""
    n_ctx: int = 2048
    n_threads: int = 0
    n_gpu_layers: int = -1
    temperature: float = 0.7
    seed: int = -1
    fake_seconds: float = 0.5
    fake_distribution: str = "deterministic"
    device: str = ""


class Engine(Protocol):
    n_ctx: int

    def complete(self, request: Request, on_token: TokenHook | None = None) -> Completion: ...
