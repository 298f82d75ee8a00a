"""Evaluation prompts in AlpacaEval format: a JSON list of objects with at least
`instruction` (and usually `dataset`, `output`, `generator`).

A prompt is identified by its position in the file, so records stay keyed to the
same prompt whatever subset or order a run uses.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError

HF_DATASET = ("tatsu-lab/alpaca_eval", "alpaca_eval", "eval")


@dataclass(frozen=True)
class Prompt:
    index: int
    instruction: str
    dataset: str = ""
    reference: str | None = None
    """The file's own `output`, if it has one (an AlpacaEval reference file does)."""


def load_prompts(path: Path) -> list[Prompt]:
    """Read an AlpacaEval-format file; raise ConfigError on anything else."""
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"prompts file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read prompts file {path}: {err}") from None
    return from_rows(body, str(path))


def from_rows(rows: Any, where: str) -> list[Prompt]:
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{where}: expected a non-empty JSON list of objects with an 'instruction'")
    prompts = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
            raise ConfigError(f"{where}: item {i} has no 'instruction' text")
        output = row.get("output")
        prompts.append(Prompt(index=i, instruction=row["instruction"], dataset=str(row.get("dataset") or ""),
                              reference=output if isinstance(output, str) else None))
    return prompts


def load_hf() -> list[Prompt]:
    """The AlpacaEval set through the `datasets` library (needs network access to the hub)."""
    try:
        import datasets  # type: ignore[import-not-found]  # optional: not in any extra
    except ImportError:
        raise ConfigError("--hf needs the datasets library (pip install datasets); "
                          "or pass an AlpacaEval JSON file as PROMPTS") from None
    name, subset, split = HF_DATASET
    try:
        rows = datasets.load_dataset(name, subset, trust_remote_code=True)[split]
    except Exception as err:  # the library raises many kinds; all mean "not available here"
        raise ConfigError(f"cannot load {name} ({subset}/{split}): {err}") from None
    return from_rows([dict(r) for r in rows], name)


def select(prompts: list[Prompt], limit: int | None, seed: int, sample: str = "first") -> list[Prompt]:
    """The prompts a run uses, in index order: the first N, or N drawn with the seed."""
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    count = len(prompts) if limit is None else min(limit, len(prompts))
    if sample == "first":
        chosen = prompts[:count]
    elif sample == "random":
        chosen = random.Random(seed).sample(prompts, count)
    else:
        raise ConfigError(f"unknown sample mode {sample!r} (first or random)")
    return sorted(chosen, key=lambda p: p.index)


def digest(prompts: list[Prompt]) -> str:
    """Identifies a prompt set independently of where it was read from."""
    canonical = json.dumps([[p.instruction, p.dataset] for p in prompts], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
