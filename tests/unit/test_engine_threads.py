"""The llama engine gives llama.cpp the configured thread budget for prompts as for generation."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from edge_agent.engine.base import EngineSpec
from edge_agent.engine.llama import LlamaEngine


class FakeLlama:
    made: list[dict[str, Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeLlama.made.append(kwargs)


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> type[FakeLlama]:
    FakeLlama.made = []
    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(Llama=FakeLlama))
    return FakeLlama


@pytest.mark.parametrize("configured, expected", [(1, 1), (3, 3)])
def test_prompt_threads_follow_the_configured_threads(fake_llama: type[FakeLlama], tmp_path: Path,
                                                      configured: int, expected: int) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"")
    LlamaEngine(EngineSpec(kind="llama", model_path=str(model), n_threads=configured))
    (kwargs,) = fake_llama.made
    assert kwargs["n_threads"] == kwargs["n_threads_batch"] == expected


def test_unset_threads_mean_every_cpu_for_both(fake_llama: type[FakeLlama], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    LlamaEngine(EngineSpec(kind="llama", model_path=str(model), n_threads=0))
    (kwargs,) = fake_llama.made
    assert kwargs["n_threads"] == kwargs["n_threads_batch"] == 4
