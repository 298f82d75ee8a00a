"""Building the chat messages for a task, fitting them into the context window.

A proposer answers the prompt alone. An aggregator gets the instruction and
the numbered answers of the previous layer as its system message and the
user's prompt as the user message (the layout of the MoA papers). When the
answers do not fit in n_ctx, they are truncated fairly: short answers are
kept whole and the rest share what is left equally (water-filling), so no
answer is dropped and no answer gets less than an equal share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge_agent.errors import ModelError

TRUNCATION_MARK = " [...]"
# Tokens reserved for the chat template's role markers and for "Answer i:" headings.
TEMPLATE_RESERVE = 32
PER_REFERENCE_RESERVE = 8


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def truncate(self, text: str, tokens: int) -> str: ...


class WhitespaceCounter:
    """A rough counter (one token per word) for engines without a tokenizer."""

    def count(self, text: str) -> int:
        return len(text.split())

    def truncate(self, text: str, tokens: int) -> str:
        return " ".join(text.split()[: max(tokens, 0)])


@dataclass(frozen=True)
class BuiltPrompt:
    messages: list[dict[str, str]]
    truncated: bool


def fair_shares(lengths: list[int], budget: int) -> list[int]:
    """Per-item token allowances summing to at most budget, by water-filling."""
    shares = list(lengths)
    if sum(lengths) <= budget:
        return shares
    remaining = max(budget, 0)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    left = len(order)
    for position, i in enumerate(order):
        equal = remaining // left
        if lengths[i] <= equal:
            remaining -= lengths[i]
            left -= 1
            continue
        for j in order[position:]:
            shares[j] = equal
        break
    return shares


def build_messages(
    prompt: str,
    references: list[str],
    instruction: str,
    n_ctx: int,
    max_tokens: int,
    counter: TokenCounter,
) -> BuiltPrompt:
    """The messages for one inference; raises ModelError if the prompt alone cannot fit."""
    fixed = counter.count(prompt) + TEMPLATE_RESERVE + max_tokens
    if references:
        fixed += counter.count(instruction) + PER_REFERENCE_RESERVE * len(references)
    if fixed > n_ctx:
        raise ModelError(
            f"prompt needs {fixed} tokens with the reply, more than the context window of {n_ctx}"
        )
    if not references:
        return BuiltPrompt([{"role": "user", "content": prompt}], truncated=False)
    lengths = [counter.count(r) for r in references]
    mark = counter.count(TRUNCATION_MARK)
    shares = fair_shares(lengths, n_ctx - fixed - mark * len(references))
    fitted: list[str] = []
    for text, length, share in zip(references, lengths, shares, strict=True):
        fitted.append(text if share >= length else counter.truncate(text, share) + TRUNCATION_MARK)
    numbered = "\n\n".join(f"Answer {i}:\n{text}" for i, text in enumerate(fitted, start=1))
    return BuiltPrompt(
        [
            {"role": "system", "content": f"{instruction}\n\n{numbered}"},
            {"role": "user", "content": prompt},
        ],
        truncated=shares != lengths,
    )
