"""Run the performance benchmarks of issue #12 and write their table to docs/performance.md.

    python -m benchmarks [--quick] [--only fsync floor critical llama idle] [--no-write]
    python -m benchmarks --list            # these and the older, standalone benchmarks
    python -m benchmarks run api_overhead -- --rounds 20   # an older one, its own arguments

Every figure is a ratio against a baseline measured in the same run (the machine is shared, its
load moves: only side-by-side ratios compare across runs), the median of several runs. The
machine and the load average before and after each benchmark are printed and written with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import Figure, load_average, log, machine

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- benchmarks: table begin -->", "<!-- benchmarks: table end -->"


@dataclass(frozen=True)
class Bench:
    name: str
    goal: str
    module: str
    what: str
    run: Callable[[bool], list[Figure]]


def _fsync(quick: bool) -> list[Figure]:
    from benchmarks import fsync_cost
    return fsync_cost.run(quick)


def _floor(quick: bool) -> list[Figure]:
    from benchmarks import mesh_latency
    return mesh_latency.floor(quick)


def _critical(quick: bool) -> list[Figure]:
    from benchmarks import mesh_latency
    return mesh_latency.critical(quick)


def _llama(quick: bool) -> list[Figure]:
    from benchmarks import llama_overhead
    return llama_overhead.run(quick)


def _idle(quick: bool) -> list[Figure]:
    from benchmarks import idle_cpu
    return idle_cpu.run(quick)


BENCHES = [
    Bench("fsync", "5", "benchmarks.fsync_cost", "store commits per task, here and on a throttled loop device", _fsync),
    Bench("floor", "1", "benchmarks.mesh_latency floor", "coordination ms per layer, fake engine at 0 s", _floor),
    Bench("critical", "2", "benchmarks.mesh_latency critical", "end-to-end ÷ critical path at 0.5 s", _critical),
    Bench("llama", "3", "benchmarks.llama_overhead", "agent's inference ÷ llama-cpp-python direct", _llama),
    Bench("idle", "4", "benchmarks.idle_cpu", "idle CPU of local meshes up to 16 devices", _idle),
]

# The older benchmarks: standalone modules with their own arguments and reports (see docs).
OLDER = {
    "api_overhead": ("benchmarks.api_overhead", "what the HTTP API adds to a job (docs/api.md)"),
    "api_stream_latency": ("benchmarks.api_stream_latency", "first token through the API (docs/api.md)"),
    "scale_hub": ("benchmarks.scale_hub", "hub topology against full mesh by size (docs/scale.md)"),
    "sim_policies": ("benchmarks.sim_policies", "peer-choice policies in the simulator (docs/stability.md)"),
    "stability_mesh": ("benchmarks.stability_mesh", "Theorem 1 on real agents, minutes (docs/stability.md)"),
    "tui_load": ("benchmarks.tui_load", "the TUI under 16 simulated devices (docs/tui.md)"),
}


def table(figures: list[Figure]) -> list[str]:
    lines = ["| goal | figure | value | baseline (same run) | ratio | target | runs | load before → after |",
             "|---|---|---|---|---|---|---|---|"]
    for f in figures:
        verdict = "" if f.ok is None else (" ✓" if f.ok else " ✗")
        ratio = f"**{f.shown_ratio()}**" if f.has_ratio() else f.shown_ratio()
        lines.append(f"| {f.goal} | {f.name} | {f.value:.4g} {f.unit} | {f.baseline_name}: {f.baseline:.4g} "
                     f"| {ratio}{verdict} | {f.target or '—'} | {f.runs} | {f.detail.get('load', '')} |")
    return lines


def write_doc(figures: list[Figure], described: dict[str, str], quick: bool, seconds: float,
              failures: list[str]) -> None:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [BEGIN, "",
            f"Last run: {when}, `python -m benchmarks{' --quick' if quick else ''}`, {seconds / 60:.1f} min. "
            f"Machine: {described['cpu']}, {described['cores']} cores, Linux {described['kernel']}, "
            f"Python {described['python']}, llama-cpp-python {described['llama-cpp-python']}.", "",
            *table(figures), ""]
    if failures:
        body += ["Failed in this run: " + "; ".join(failures), ""]
    details = {f"[{f.goal}] {f.name}": {k: v for k, v in f.detail.items() if k != "load"}
               for f in figures if f.detail}
    body += ["<details><summary>Details of the run (JSON)</summary>", "", "```json",
             json.dumps(details, indent=1, default=str), "```", "", "</details>", "", END]
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + "\n".join(body) + rest.split(END, 1)[1]
    else:
        text += "\n" + "\n".join(body) + "\n"
    DOC.write_text(text)
    log(f"table written to {DOC.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs: a few minutes in all")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], help="run these only")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--no-write", action="store_true",
                        help=f"do not rewrite {DOC.relative_to(ROOT)} (a run with --only never does)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("extra", nargs="*", help="`run NAME [-- ARGS]`: run one of the older benchmarks")
    args = parser.parse_args()
    if args.list:
        for b in BENCHES:
            print(f"{b.name:<10} goal {b.goal}  python -m {b.module:<34} {b.what}")
        for name, (module, what) in OLDER.items():
            print(f"{name:<20} python -m {module:<33} {what}")
        return 0
    if args.extra:
        if args.extra[0] != "run" or len(args.extra) < 2 or args.extra[1] not in OLDER:
            parser.error(f"expected `run NAME` with NAME one of {', '.join(OLDER)}")
        return subprocess.call([sys.executable, "-m", OLDER[args.extra[1]][0], *args.extra[2:]], cwd=ROOT)
    described = machine()
    log("machine: " + ", ".join(f"{k} {v}" for k, v in described.items()) + f"; load {load_average()}")
    started = time.monotonic()
    figures: list[Figure] = []
    failures: list[str] = []
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        log(f"== {bench.name} (goal {bench.goal}): {bench.what}; load {load_average()}")
        try:
            got = bench.run(args.quick)
        except Exception as err:  # one benchmark failing must not lose the others' figures
            log(f"   {bench.name} failed: {type(err).__name__}: {err}")
            failures.append(f"{bench.name}: {type(err).__name__}: {err}")
            continue
        for f in got:
            print(f.line(), flush=True)
        figures += got
    seconds = time.monotonic() - started
    print("\n".join(table(figures)))
    log(f"done in {seconds / 60:.1f} min; load {load_average()}")
    if args.json:
        args.json.write_text(json.dumps({"machine": described, "figures": [f.as_dict() for f in figures]},
                                        indent=2, default=str))
    if not args.no_write and not args.only:  # the table holds every benchmark of one run
        write_doc(figures, described, args.quick, seconds, failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
