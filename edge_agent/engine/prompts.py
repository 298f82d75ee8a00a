"""Building the chat messages for a task, fitting them into the context window.

A proposer answers the conversation as it is (a bare prompt is one user
turn). An aggregator gets the instruction and the numbered answers of the
previous layer as its system message, followed by the conversation (the
layout of the MoA papers; a system turn of the user's own comes first in that
system message). The conversation is never cut: it, the instruction and the
reply's budget are the fixed cost. When the answers do not fit in what is
left of n_ctx, they are truncated fairly: short answers are kept whole and
the rest share what is left equally (water-filling), so no answer is dropped
and no answer gets less than an equal share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge_agent.errors import ModelError

TRUNCATION_MARK = " [...]"
# Tokens reserved for the chat template's role markers and for "Answer i:" headings.
TEMPLATE_RESERVE = 32
PER_REFERENCE_RESERVE = 8
PER_TURN_RESERVE = 6
# Room each reference must at least have for a conversation to be accepted at all.
MIN_REFERENCE_SHARE = 32

Conversation = list[tuple[str, str]]
"""(role, content) pairs: system, user and assistant turns."""


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


def fixed_tokens(turns: Conversation, references: int, instruction: str, max_tokens: int,
                 counter: TokenCounter) -> int:
    """Tokens an inference needs besides its references: conversation, template, reply."""
    fixed = sum(counter.count(content) for _, content in turns) + TEMPLATE_RESERVE + max_tokens
    fixed += PER_TURN_RESERVE * max(len(turns) - 1, 0)
    if references:
        fixed += counter.count(instruction) + PER_REFERENCE_RESERVE * references
    return fixed


def check_fits(turns: Conversation, references: int, instruction: str, n_ctx: int, max_tokens: int,
               counter: TokenCounter) -> None:
    """Refuse up front a conversation that leaves too little room (ModelError, one line)."""
    need = fixed_tokens(turns, references, instruction, max_tokens, counter) + MIN_REFERENCE_SHARE * references
    if need > n_ctx:
        raise ModelError(f"the conversation needs {need} tokens with the reply and the references, "
                         f"more than the context window of {n_ctx}")


def build_messages(
    prompt: str,
    references: list[str],
    instruction: str,
    n_ctx: int,
    max_tokens: int,
    counter: TokenCounter,
    conversation: Conversation | None = None,
) -> BuiltPrompt:
    """The messages for one inference; raises ModelError if the conversation alone cannot fit."""
    turns = list(conversation) if conversation else [("user", prompt)]
    fixed = fixed_tokens(turns, len(references), instruction, max_tokens, counter)
    if fixed > n_ctx:
        raise ModelError(
            f"prompt needs {fixed} tokens with the reply, more than the context window of {n_ctx}"
        )
    if not references:
        return BuiltPrompt([{"role": r, "content": c} for r, c in turns], truncated=False)
    lengths = [counter.count(r) for r in references]
    mark = counter.count(TRUNCATION_MARK)
    shares = fair_shares(lengths, n_ctx - fixed - mark * len(references))
    fitted: list[str] = []
    for text, length, share in zip(references, lengths, shares, strict=True):
        fitted.append(text if share >= length else counter.truncate(text, share) + TRUNCATION_MARK)
    numbered = "\n\n".join(f"Answer {i}:\n{text}" for i, text in enumerate(fitted, start=1))
    system = f"{instruction}\n\n{numbered}"
    if turns[0][0] == "system":
        system = f"{turns[0][1]}\n\n{system}"
        turns = turns[1:]
    return BuiltPrompt(
        [{"role": "system", "content": system}, *({"role": r, "content": c} for r, c in turns)],
        truncated=shares != lengths,
    )
