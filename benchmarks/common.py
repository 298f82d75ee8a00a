"""What every benchmark of `python -m benchmarks` shares: the figure it reports, the machine it
ran on, the load it ran under, and a free loopback block for its local meshes."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Blocks 127.0.30-99: tests take 100-254 (tests/support/meshes.py), other benchmarks name theirs
# (api_overhead 70, ...); a block is used only if its first broker address is free.
BLOCK_FIRST, BLOCK_LAST = 30, 99


@dataclass
class Figure:
    """One line of the table: a value, the baseline it is divided by, both from the same run."""

    goal: str
    name: str
    value: float
    baseline: float
    unit: str
    baseline_name: str
    target: str = ""
    ok: bool | None = None
    runs: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    ratio: float = float("nan")
    """value / baseline unless given: paired runs give the median of the pairs' ratios."""

    def __post_init__(self) -> None:
        if self.ratio != self.ratio and self.baseline:  # NaN: not given
            self.ratio = self.value / self.baseline

    def has_ratio(self) -> bool:
        return not math.isnan(self.ratio)  # NaN: nothing over nothing, nothing to divide

    def shown_ratio(self) -> str:
        return f"{self.ratio:.3f}" if self.has_ratio() else "—"

    def line(self) -> str:
        verdict = "" if self.ok is None else ("  OK" if self.ok else "  OVER")
        ratio = self.shown_ratio()
        target = f"; target {self.target}" if self.target else ""
        return (f"[{self.goal}] {self.name}: {self.value:.4g} {self.unit} / {self.baseline_name} "
                f"{self.baseline:.4g} = {ratio} (n={self.runs}{target}){verdict}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    """CPU model, cores, kernel, Python and llama-cpp-python version."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        llama = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        llama = "not installed"
    return {"cpu": model, "cores": str(len(os.sched_getaffinity(0))), "kernel": platform.release(),
            "python": platform.python_version(), "llama-cpp-python": llama}


def free_block() -> str:
    """A loopback block 127.0.N no other mesh on this host listens on (same check as the tests')."""
    from edge_agent.ops import localmesh

    span = BLOCK_LAST - BLOCK_FIRST + 1
    start = random.Random(os.getpid() ^ time.time_ns()).randrange(span)
    for i in range(span):
        block = f"127.0.{BLOCK_FIRST + (start + i) % span}"
        if not localmesh.block_taken(block):
            return block
    raise RuntimeError("no free loopback block in 127.0.30-99 for a benchmark mesh")


@contextlib.contextmanager
def mesh(count: int, engine: str = "fake", fake_seconds: float = 0.0, **settings: Any) -> Iterator[list[Any]]:
    """A local mesh of fake (or llama) devices as `edge-agent mesh up` starts it, torn down however
    the benchmark ends. The core is imported here, not at the top, so that listing the benchmarks
    (`python -m benchmarks --list`) does not load it."""
    from edge_agent.ops import localmesh
    from edge_agent.ops.localmesh import agent_settings

    extra = tuple(f"{k}={v}" for k, v in {"admission": "accept", **settings}.items())
    model = "smollm2-135m-instruct-q4_1" if engine == "llama" else "fake"
    with tempfile.TemporaryDirectory(prefix="dmoa-bench-") as root:
        devices = localmesh.up(count, Path(root), agent_settings(model, engine, fake_seconds, extra),
                               address_base=free_block(), timeout_s=120)
        try:
            yield devices
        finally:
            localmesh.down(Path(root))


def print_figures(figures: list[Figure], as_json: bool = False) -> None:
    if as_json:
        print(json.dumps([f.as_dict() for f in figures], indent=2))
    else:
        for f in figures:
            print(f.line())
