"""Token counting in the agent itself, to refuse up front a conversation that cannot fit.

For llama it loads the model's vocabulary only (no weights, a fraction of a
second): counting exactly beats guessing from characters, which either refuses
conversations that fit or accepts ones the model then rejects.
"""

from __future__ import annotations

from edge_agent.engine.base import EngineSpec
from edge_agent.engine.prompts import TokenCounter, WhitespaceCounter
from edge_agent.errors import ModelError


def build_counter(spec: EngineSpec) -> TokenCounter:
    if spec.kind != "llama":
        return WhitespaceCounter()
    from llama_cpp import Llama

    from edge_agent.engine.llama import LlamaCounter

    try:
        vocab = Llama(model_path=spec.model_path, vocab_only=True, verbose=False)
    except (ValueError, OSError) as err:
        raise ModelError(f"cannot read the vocabulary of {spec.model_path}: {err}") from None
    return LlamaCounter(vocab)
