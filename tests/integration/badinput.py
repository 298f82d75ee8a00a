"""A generator of messages that must each be rejected: every one is a valid message with one
thing broken, or no message at all. Seeded, so a failing run can be replayed."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from edge_agent.wire import topics

TEMPLATES: dict[str, dict[str, Any]] = {
    "task": {"v": 1, "kind": "task", "task_id": "j1/1/edge-1/0", "job_id": "j1", "origin": "edge-1", "layer": 1,
             "role": "propose", "prompt": "Why is the sky blue?", "references": [], "max_tokens": 32},
    "result": {"v": 1, "kind": "result", "task_id": "j1/1/edge-2/0", "job_id": "j1", "device": "edge-2",
               "layer": 1, "role": "propose", "ok": True, "text": "Rayleigh scattering."},
    "submit": {"v": 1, "kind": "submit", "job_id": "j1", "prompt": "Why?", "layers": 1, "proposers": 1},
}
# Invalid both as device ids and as job ids.
HOSTILE_IDS = ["../etc/passwd", "+", "#", "a/b", "", "x" * 65, "edge 1", "\u0000", "edge-1/#"]
WRONG_TYPES: list[Any] = [None, 1, 1.5, True, "1", [], {}]


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _mutations(kind: str) -> list[Callable[[random.Random, dict[str, Any]], bytes]]:
    id_fields = [f for f in ("job_id", "origin", "device") if f in TEMPLATES[kind]]
    fields = [f for f in TEMPLATES[kind] if f not in ("v", "kind")]

    def wrong_version(rng: random.Random, body: dict[str, Any]) -> bytes:
        return json.dumps({**body, "v": rng.choice([0, 2, 99, "1", None])}).encode()

    def wrong_kind(rng: random.Random, body: dict[str, Any]) -> bytes:
        return json.dumps({**body, "kind": rng.choice([k for k in TEMPLATES if k != kind] + ["", "status"])}).encode()

    def wrong_type(rng: random.Random, body: dict[str, Any]) -> bytes:
        name = rng.choice(fields)
        options = [w for w in WRONG_TYPES if type(w) is not type(body[name]) and not _same_kind(body[name], w)]
        return json.dumps({**body, name: rng.choice(options)}).encode()

    def unknown_field(rng: random.Random, body: dict[str, Any]) -> bytes:
        return json.dumps({**body, f"extra_{rng.randrange(1000)}": 1}).encode()

    def missing_field(rng: random.Random, body: dict[str, Any]) -> bytes:
        gone = rng.choice([f for f in ("job_id", "layer", "prompt", "task_id", "ok") if f in body])
        return json.dumps({k: v for k, v in body.items() if k != gone}).encode()

    def hostile_id(rng: random.Random, body: dict[str, Any]) -> bytes:
        return json.dumps({**body, rng.choice(id_fields): rng.choice(HOSTILE_IDS)}).encode()

    def deep_nesting(rng: random.Random, body: dict[str, Any]) -> bytes:
        text = json.dumps({**body, "prompt": "@"})
        return text.replace('"@"', _deep(rng.choice([100, 5000, 50000]))).encode()

    def lone_surrogate(rng: random.Random, body: dict[str, Any]) -> bytes:
        name = "prompt" if "prompt" in body else "text"
        return json.dumps({**body, name: "@"}).replace('"@"', '"\\ud83d tail"').encode()

    def out_of_range(rng: random.Random, body: dict[str, Any]) -> bytes:
        bad = {"layer": [-1, 0], "layers": [-1, 9, 10**9], "proposers": [-1, 65], "max_tokens": [0, -1, 10**9]}
        name = rng.choice([f for f in bad if f in body])
        return json.dumps({**body, name: rng.choice(bad[name])}).encode()

    def broken_bytes(rng: random.Random, body: dict[str, Any]) -> bytes:
        raw = json.dumps(body).encode()
        cut = rng.randrange(1, len(raw) - 1)
        noise = bytes(rng.randrange(256) for _ in range(40)) + b"\xff"
        return rng.choice([raw[:cut], raw[:cut] + b"\xff\xfe" + raw[cut:], noise])

    def not_an_object(rng: random.Random, body: dict[str, Any]) -> bytes:
        return rng.choice([b"[]", b"1", b'"task"', b"null", b"true"])

    found = [wrong_version, wrong_kind, wrong_type, unknown_field, missing_field, deep_nesting,
             lone_surrogate, broken_bytes, not_an_object]
    if id_fields:
        found.append(hostile_id)
    if kind in ("task", "submit"):
        found.append(out_of_range)
    return found


def _same_kind(a: Any, b: Any) -> bool:
    """An int is a valid float on the wire."""
    return isinstance(a, float) and isinstance(b, int) and not isinstance(b, bool)


def bad_messages(device: str, count: int, seed: int = 1, oversized: int = 10) -> Iterator[tuple[str, bytes]]:
    """count (topic, payload) pairs for device's task, result and submit topics, oversized of them
    over the 256 KiB message limit."""
    rng = random.Random(seed)
    where = {"task": topics.task(device), "result": topics.result(device), "submit": topics.submit(device)}
    mutations = {kind: _mutations(kind) for kind in TEMPLATES}
    for n in range(count):
        kind = rng.choice(sorted(TEMPLATES))
        if n < oversized:
            yield where[kind], json.dumps({**TEMPLATES[kind], "pad": "x" * 300_000}).encode()
            continue
        yield where[kind], rng.choice(mutations[kind])(rng, dict(TEMPLATES[kind]))
