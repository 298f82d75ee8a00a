"""A pairwise judge in the AlpacaEval manner, through any OpenAI-compatible endpoint.

For each prompt the judge sees the instruction and two answers, ours and the
reference, in an order drawn at random (seeded per configuration and prompt, so a
rerun shows the same order), and names the better one. When the endpoint returns
log-probabilities the preference is the probability mass on each letter, as
AlpacaEval's weighted judges use; otherwise the reply's text is parsed. The
accuracy is our win rate over the judged prompts, with its standard error.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from edge_agent.errors import EdgeAgentError

SYSTEM = (
    "You are an impartial judge of answers to a user's instruction. You compare two answers and decide "
    "which one serves the user better: it follows the instruction, is correct, relevant and complete, and "
    "is no longer than it needs to be. The order in which the answers appear says nothing about them."
)
TEMPLATE = (
    "## Instruction\n{instruction}\n\n## Answer A\n{first}\n\n## Answer B\n{second}\n\n"
    "Which answer is better? Reply with the single letter A or B and nothing else."
)
_PREFIXED = re.compile(r"\b(?:answer|output|response|option)\s*[\(\[]?([AB])(?![A-Za-z])", re.IGNORECASE)
_BARE = re.compile(r"^[\s*\"'`(\[]*([AB])(?:[*\"'`)\]]*\s*$|[*\"'`)\]]*[.:,;!)\n])")
_STATED = re.compile(r"(?<![A-Za-z])([AB]) is (?:the )?better")


class JudgeError(EdgeAgentError):
    """The judge endpoint cannot be reached or does not answer as an OpenAI-compatible API."""


@dataclass(frozen=True)
class WinRate:
    rate: float
    """Percent of comparisons won (a tie or a split preference counts its share)."""
    se: float
    """Standard error of that percentage."""
    n: int


def parse_choice(text: str) -> str | None:
    """'A' or 'B' from a judge's reply, or None when the reply names neither (or both)."""
    bare = _BARE.match(text)
    if bare:  # the letter alone, as asked: "B", "**A**", "A." or "A: because..."
        return bare.group(1)
    found = {m.upper() for m in _PREFIXED.findall(text)} | set(_STATED.findall(text))
    return found.pop() if len(found) == 1 else None


def preference_from_logprobs(top: list[dict[str, Any]]) -> float | None:
    """Probability that A is the better answer, from the first token's alternatives."""
    mass = {"A": 0.0, "B": 0.0}
    for item in top:
        letter = _letter(item.get("token")) if isinstance(item, dict) else None
        if letter is not None and isinstance(item.get("logprob"), (int, float)):
            mass[letter] += math.exp(item["logprob"])
    total = mass["A"] + mass["B"]
    return mass["A"] / total if total > 0 else None


def _letter(token: object) -> str | None:
    """'A' or 'B' when a token is just that letter (with spacing or markdown around it)."""
    text = str(token or "").strip().strip("*\"'`([)]:.")
    return text if text in ("A", "B") else None


def win_rate(preferences: list[float]) -> WinRate | None:
    """Mean preference for ours in percent, with the standard error of the mean."""
    if not preferences:
        return None
    n = len(preferences)
    mean = sum(preferences) / n
    if n < 2:
        return WinRate(100 * mean, 0.0, n)
    variance = sum((p - mean) ** 2 for p in preferences) / (n - 1)
    return WinRate(100 * mean, 100 * math.sqrt(variance / n), n)


def ours_first(seed: int, config: str, index: int) -> bool:
    return random.Random(f"{seed}:{config}:{index}").random() < 0.5


def clip(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit].rstrip() + " [...]", True


def fingerprint(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class JudgeClient:
    def __init__(self, url: str, model: str = "", api_key: str = "", timeout_s: float = 120.0,
                 max_chars: int = 4000) -> None:
        base = url.rstrip("/")
        if base.endswith("/chat/completions"):
            base = base[: -len("/chat/completions")]
        self.base = base
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_chars = max_chars
        self._logprobs = True

    def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base + path, data=data, headers=headers,
                                         method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", errors="replace")[:300].replace("\n", " ")
            raise JudgeError(f"judge {self.base}{path} answered HTTP {err.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise JudgeError(f"cannot reach the judge at {self.base}: {reason}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise JudgeError(f"judge {self.base}{path} did not answer JSON") from None
        if not isinstance(answer, dict):
            raise JudgeError(f"judge {self.base}{path} answered something other than a JSON object")
        return answer

    def check(self) -> str:
        """Reach the endpoint before any work; pick its first model when none was named."""
        if self.model:
            return self.model
        listing = self._request("/models")
        models = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
        if not models or not isinstance(models[0], str):
            raise JudgeError(f"judge {self.base} lists no model; pass --judge-model")
        self.model = models[0]
        return self.model

    def compare(self, instruction: str, first: str, second: str) -> tuple[float | None, str, str]:
        """(probability that the first answer is better or None, method, the judge's reply)."""
        body: dict[str, Any] = {
            "model": self.model or "judge",
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": TEMPLATE.format(instruction=instruction, first=first,
                                                                    second=second)}],
            "temperature": 0,
            "max_tokens": 8,
        }
        if self._logprobs:
            try:
                answer = self._request("/chat/completions", {**body, "logprobs": True, "top_logprobs": 5})
            except JudgeError as err:
                if "logprob" not in str(err).lower():
                    raise
                self._logprobs = False  # this endpoint does not offer them: parse text from now on
                answer = self._request("/chat/completions", body)
        else:
            answer = self._request("/chat/completions", body)
        try:
            choice = answer["choices"][0]
            text = str(choice["message"].get("content") or "")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise JudgeError(f"judge {self.base} answered without choices[0].message") from None
        tokens = ((choice.get("logprobs") or {}).get("content") or [])
        for token in tokens[:3]:  # the letter may follow a space or a markdown mark
            if not isinstance(token, dict) or _letter(token.get("token")) is None:
                continue
            weighted = preference_from_logprobs(token.get("top_logprobs") or [])
            if weighted is not None:
                return weighted, "logprobs", text
            break
        parsed = parse_choice(text)
        if parsed is None:
            return None, "unparsed", text
        return (1.0 if parsed == "A" else 0.0), "text", text

    def judge(self, instruction: str, ours: str, reference: str, ours_is_first: bool) -> dict[str, Any]:
        """One comparison, as the record a run keeps."""
        ours_text, cut_ours = clip(ours, self.max_chars)
        ref_text, cut_ref = clip(reference, self.max_chars)
        first, second = (ours_text, ref_text) if ours_is_first else (ref_text, ours_text)
        record: dict[str, Any] = {"ours_first": ours_is_first, "truncated": cut_ours or cut_ref,
                                  "judge_model": self.model}
        try:
            p_first, method, raw = self.compare(instruction, first, second)
        except JudgeError as err:
            return {**record, "preference": None, "method": "error", "error": str(err), "raw": ""}
        preference = None if p_first is None else (p_first if ours_is_first else 1.0 - p_first)
        return {**record, "preference": preference, "method": method, "error": "", "raw": raw[:200]}


def judge_outputs(client: JudgeClient, config: str, items: list[tuple[int, str, str, str]], seed: int,
                  cached: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Judge (index, instruction, ours, reference) items, reusing cached judgments of the
    same texts by the same judge model. Returns (judgments for the items, new ones to keep)."""
    known = {(row.get("index"), row.get("key")): row for row in cached
             if row.get("preference") is not None or row.get("method") == "unparsed"}
    current: list[dict[str, Any]] = []
    fresh: list[dict[str, Any]] = []
    for index, instruction, ours, reference in items:
        key = fingerprint(instruction, ours, reference, client.model)
        row = known.get((index, key))
        if row is None:
            row = {"index": index, "key": key, **client.judge(instruction, ours, reference,
                                                              ours_first(seed, config, index))}
            fresh.append(row)
        current.append(row)
    return current, fresh
