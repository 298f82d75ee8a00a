"""Theorem 1 on the real agents: queues of a local mesh against the simulator.

A local mesh of n virtual devices (fake engine, deterministic service time α)
is driven with Poisson prompts, one user per device at λ prompts/s, for each
ratio λ/λ* (default 0.5, 0.9, 1.2 with λ* = 1/(((k+1)M+1)·α)). Prompts are
submitted from one client on device 1's broker, each in its own thread, so
the arrival process never waits for an answer. Each device's queue (the
status's `queue`: its queued and running tasks, which is what the simulator
counts too) is sampled from the statuses the agents publish every 0.5 s and
after every task; the time-average over the point's window after a warm-up
is compared with edge_agent.theory.simulator for the same n, M, k, α and λ:

- "sim α": independent runs (Poisson arrivals, `--reps` seeds) of the same
  length and warm-up, so both sides share the start from empty queues;
- "sim α_eff": the same with each device's effective service time measured
  from its statuses (seconds per completed task while its queue stays >= 2):
  per-task overheads (store commits, the worker pipe, MQTT publishing) add to
  the engine's α;
- "trace α_eff": the arrivals this run actually made, replayed in the
  simulator (only peer choice still random, averaged over seeds), which
  removes most of the run-to-run noise of a short window near ρ = 1.

Past λ* the growth of the queues (tasks/s per device, least squares over the
window) is compared with the same simulations. The mesh's stores give the
exact time-average queue (from each task's arrival and finish times) as a
check on the status sampling.

    python -m benchmarks.stability_mesh --png docs/stability_mesh.png

Each point runs --duration seconds (default 75) plus a drain of at most
--drain seconds; the mesh is torn down at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.client.status import observer_id
from edge_agent.client.submit import SubmitClient
from edge_agent.errors import EdgeAgentError, ProtocolError
from edge_agent.ops import localmesh
from edge_agent.ops.localmesh import VirtualDevice, agent_settings
from edge_agent.theory.simulator import SimConfig, SimResult, is_bounded, simulate
from edge_agent.theory.stability import lambda_star
from edge_agent.wire import topics
from edge_agent.wire.messages import Status, decode
from edge_agent.wire.mqtt import BrokerAddress, MeshClient

GRID_S = 0.25  # resolution of the mean-over-devices queue series (growth fit, plot)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- measuring ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    device: str
    ts: float  # the agent's wall clock when it made the status
    queue: int
    completed: int
    alpha: float | None


class StatusLog:
    """Every status heard on one broker (bridged statuses of all devices included)."""

    def __init__(self, device: VirtualDevice) -> None:
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._client = MeshClient(observer_id("stability-bench"), BrokerAddress(device.host, device.port))
        self._client.route(topics.ALL_STATUS, self._on_status, qos=0)
        self._client.connect(timeout_s=10)

    def _on_status(self, message: mqtt.MQTTMessage) -> None:
        try:
            s = decode(message.payload, Status)
        except ProtocolError:
            return
        if s.online:
            with self._lock:
                self.samples.append(Sample(s.device, s.ts, s.queue, s.completed, s.alpha))

    def of(self, device: str, start: float, end: float) -> list[Sample]:
        """The device's samples in [start, end], with the last one before start (its value at start)."""
        with self._lock:
            mine = sorted((s for s in self.samples if s.device == device), key=lambda s: s.ts)
        before = [s for s in mine if s.ts < start][-1:]
        return before + [s for s in mine if start <= s.ts <= end]

    def latest_queues(self) -> dict[str, int]:
        with self._lock:
            latest: dict[str, Sample] = {}
            for s in self.samples:
                if s.device not in latest or s.ts >= latest[s.device].ts:
                    latest[s.device] = s
        return {d: s.queue for d, s in latest.items()}

    def close(self) -> None:
        self._client.close()


def value_at(samples: list[Sample], t: float) -> int:
    """The queue a step function through the samples has at t (0 before the first)."""
    value = 0
    for s in samples:
        if s.ts > t:
            break
        value = s.queue
    return value


def time_average(samples: list[Sample], start: float, end: float) -> float:
    area, t, value = 0.0, start, value_at(samples, start)
    for s in samples:
        if s.ts <= start:
            continue
        if s.ts >= end:
            break
        area += value * (s.ts - t)
        t, value = s.ts, s.queue
    area += value * (end - t)
    return area / (end - start)


def busy_time(samples: list[Sample], start: float, end: float) -> tuple[float, int]:
    """(seconds, tasks completed) over the intervals between statuses that both show >= 2 tasks:
    the device served without a pause there, so seconds / tasks is its effective service time."""
    seconds, tasks = 0.0, 0
    inside = [s for s in samples if start <= s.ts <= end]
    for a, b in zip(inside, inside[1:], strict=False):
        if a.queue >= 2 and b.queue >= 2 and b.completed > a.completed:
            seconds += b.ts - a.ts
            tasks += b.completed - a.completed
    return seconds, tasks


def per_task(seconds: float, tasks: int, min_tasks: int = 20) -> float | None:
    return seconds / tasks if tasks >= min_tasks else None


def mean_series(per_device: list[list[Sample]], start: float, end: float) -> tuple[list[float], list[float]]:
    """(seconds since start, mean queue over devices) on a regular grid."""
    times = [start + i * GRID_S for i in range(int((end - start) / GRID_S) + 1)]
    means = [statistics.fmean(value_at(s, t) for s in per_device) for t in times]
    return [t - start for t in times], means


def line_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def store_figures(directory: str, start: float, end: float) -> tuple[float, float | None]:
    """Exact time-average queue over [start, end] from a device's inbox, and the mean time between
    completions while the next task was already waiting (effective service time)."""
    db = sqlite3.connect(f"file:{Path(directory) / 'data' / 'agent.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT received_at, finished_at FROM inbox ORDER BY seq").fetchall()
    finally:
        db.close()
    area = 0.0
    for received, finished in rows:
        finished = math.inf if finished is None else finished
        area += max(0.0, min(finished, end) - max(received, start))
    done = sorted(((r, f) for r, f in rows if f is not None and start <= f <= end), key=lambda row: row[1])
    gaps = [b[1] - a[1] for a, b in zip(done, done[1:], strict=False) if b[0] < a[1]]
    return area / (end - start), (statistics.fmean(gaps) if len(gaps) >= 20 else None)


# -- driving ------------------------------------------------------------------------------
@dataclass
class Load:
    """Poisson prompts, one thread per prompt in flight."""

    client: SubmitClient
    devices: list[str]
    layers: int
    proposers: int
    timeout_s: float
    sent: list[tuple[float, int]] = field(default_factory=list)  # (wall time, origin index)
    answered: list[tuple[str, float, bool, str]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, schedule: list[tuple[float, int]], start_wall: float) -> None:
        """Send each (offset, origin) at start_wall + offset, without waiting for answers."""
        for n, (offset, origin) in enumerate(schedule):
            delay = start_wall + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            thread = threading.Thread(target=self._one, args=(n, origin), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _one(self, n: int, origin: int) -> None:
        with self._lock:
            self.sent.append((time.time(), origin))
        try:
            answer = self.client.submit(f"prompt {n}: why is the sky blue?", self.layers, self.proposers,
                                        device=self.devices[origin], timeout_s=self.timeout_s)
            outcome = (self.devices[origin], answer.latency_s, answer.ok, answer.error)
        except EdgeAgentError as err:
            outcome = (self.devices[origin], math.nan, False, str(err))
        with self._lock:
            self.answered.append(outcome)

    def in_flight(self) -> int:
        return sum(t.is_alive() for t in self._threads)


def poisson_schedule(rate: float, devices: int, duration: float, rng: random.Random) -> list[tuple[float, int]]:
    arrivals = []
    for origin in range(devices):
        t = rng.expovariate(rate)
        while t < duration:
            arrivals.append((t, origin))
            t += rng.expovariate(rate)
    return sorted(arrivals)


# -- simulating -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SimSummary:
    mean_queue: float
    sd_queue: float
    growth: float  # tasks/s per device between the two halves of the window
    sd_growth: float
    stable_share: float  # fraction of runs the simulator's verdict calls bounded

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def summarise(results: list[SimResult], window: float) -> SimSummary:
    queues = [r.mean_queue for r in results]
    growth = [(r.second_half_queue - r.first_half_queue) / (window / 2) for r in results]
    def sd(values: list[float]) -> float:
        return statistics.stdev(values) if len(values) > 1 else 0.0

    return SimSummary(statistics.fmean(queues), sd(queues), statistics.fmean(growth), sd(growth),
                      sum(r.stable for r in results) / len(results))


def simulate_runs(base: SimConfig, reps: int) -> list[SimResult]:
    return [simulate(replace(base, seed=seed)) for seed in range(reps)]


# -- the experiment -------------------------------------------------------------------------
def run_point(ratio: float, rate: float, args: argparse.Namespace, devices: list[VirtualDevice], load: Load,
              statuses: StatusLog) -> dict[str, Any]:
    schedule = poisson_schedule(rate, len(devices), args.duration, random.Random(f"{args.seed}:{ratio}"))
    log(f"λ/λ* = {ratio}: λ = {rate:.4f} prompts/s per user, {len(schedule)} prompts over {args.duration:.0f} s")
    first_sent = len(load.sent)
    start = time.time() + 0.5
    load.run(schedule, start)
    end = start + args.duration
    time.sleep(max(0.0, end - time.time()) + 1.0)  # the last statuses of the window
    window = (start + args.warmup, end)
    names = [d.device for d in devices]
    per_device = [statuses.of(name, start, end) for name in names]
    t_grid, q_grid = mean_series(per_device, start, end)
    kept = [(t, q) for t, q in zip(t_grid, q_grid, strict=False) if t >= args.warmup]
    growth, intercept = line_fit([t for t, _ in kept], [q for _, q in kept])
    mid = (window[0] + window[1]) / 2
    point: dict[str, Any] = {
        "ratio": ratio, "rate": rate, "start": start, "end": end, "prompts": len(schedule),
        "trace": [(t - start, o) for t, o in load.sent[first_sent:]],
        "measured_queue": statistics.fmean(time_average(s, *window) for s in per_device),
        "device_queues": {n: time_average(s, *window) for n, s in zip(names, per_device, strict=False)},
        "first_half_queue": statistics.fmean(time_average(s, window[0], mid) for s in per_device),
        "second_half_queue": statistics.fmean(time_average(s, mid, window[1]) for s in per_device),
        "growth_fit": growth,  # least squares over the window, for the plot
        "growth_intercept": intercept,
        "alpha_status": {n: statistics.fmean(x.alpha for x in s if x.alpha is not None) for n, s in
                         zip(names, per_device, strict=False) if any(x.alpha is not None for x in s)},
        "busy": {n: busy_time(s, start, end) for n, s in zip(names, per_device, strict=False)},
        "series": {"t": t_grid, "mean": q_grid,
                   "devices": {n: [(x.ts - start, x.queue) for x in s]
                               for n, s in zip(names, per_device, strict=False)}},
    }
    point["alpha_eff"] = {n: per_task(*point["busy"][n]) for n in names}
    # The simulator's growth figure: the change between the half-window means, per second.
    point["growth"] = (point["second_half_queue"] - point["first_half_queue"]) / ((window[1] - window[0]) / 2)
    point["bounded"] = is_bounded(point["first_half_queue"], point["second_half_queue"])
    log(f"  measured time-average queue {point['measured_queue']:.2f} tasks/device, "
        f"growth {point['growth']:+.3f} tasks/s, α_eff {_fmt_alphas(point['alpha_eff'])}")
    return point


def drain(load: Load, statuses: StatusLog, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if load.in_flight() == 0 and all(q == 0 for q in statuses.latest_queues().values()):
            return True
        time.sleep(0.5)
    return False


def _fmt_alphas(alphas: dict[str, float | None]) -> str:
    return " ".join("-" if a is None else f"{a:.4f}" for a in alphas.values())


def add_simulations(point: dict[str, Any], args: argparse.Namespace, alpha_eff: tuple[float, ...]) -> None:
    n = args.devices
    base = SimConfig(devices=n, layers=args.layers, proposers=args.proposers, rate=point["rate"],
                     alphas=(args.alpha,) * n, service="deterministic", duration=args.duration,
                     warmup=args.warmup / args.duration)
    window = args.duration - args.warmup
    trace = tuple((t, o) for t, o in point["trace"] if 0 <= t < args.duration)
    eff = replace(base, alphas=alpha_eff)
    runs = simulate_runs(base, args.reps)
    point["sim"] = summarise(runs, window).as_dict()
    # Where the measurement falls among the simulator's runs of the same length (0.5: the median).
    point["percentile_queue"] = sum(r.mean_queue <= point["measured_queue"] for r in runs) / len(runs)
    point["percentile_growth"] = sum((r.second_half_queue - r.first_half_queue) / (window / 2) <= point["growth"]
                                     for r in runs) / len(runs)
    point["sim_eff"] = summarise(simulate_runs(eff, args.reps), window).as_dict()
    point["trace_nominal"] = summarise(simulate_runs(replace(base, arrivals=trace), args.trace_reps), window).as_dict()
    point["trace_eff"] = summarise(simulate_runs(replace(eff, arrivals=trace), args.trace_reps), window).as_dict()
    steady = replace(base, duration=args.steady_duration, warmup=0.1)
    long_runs = (simulate(steady), simulate(replace(steady, alphas=alpha_eff)))
    if point["ratio"] < 1:
        point["steady"], point["steady_eff"] = (r.mean_queue for r in long_runs)
    else:  # the long-run growth rate, from the half means of a long window
        long_window = 0.9 * args.steady_duration
        point["steady"], point["steady_eff"] = ((r.second_half_queue - r.first_half_queue) / (long_window / 2)
                                                for r in long_runs)


def report(points: list[dict[str, Any]], args: argparse.Namespace, alpha_eff: tuple[float, ...]) -> str:
    lines = [
        f"n={args.devices} M={args.layers} k={args.proposers} α={args.alpha} s (deterministic), "
        f"λ*={lambda_star(args.layers, args.proposers, [args.alpha]):.4f} prompts/s per user; "
        f"{args.duration:.0f} s per point, first {args.warmup:.0f} s left out; "
        f"α_eff used in the simulator: {' '.join(f'{a:.4f}' for a in alpha_eff)} s",
        "",
        "Time-average tasks per device (queued + running); sim: mean ± sd over the runs; percentile: where the "
        "measurement falls among the sim α runs.",
        "",
        "| λ/λ* | prompts | measured (statuses) | measured (stores) | sim α | percentile | sim α_eff "
        "| trace α_eff | measured / sim α | measured / trace α_eff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        sim, eff, tr = p["sim"], p["sim_eff"], p["trace_eff"]
        lines.append(
            f"| {p['ratio']} | {p['prompts']} | {p['measured_queue']:.2f} | {p['store_queue']:.2f} "
            f"| {sim['mean_queue']:.2f} ± {sim['sd_queue']:.2f} | {p['percentile_queue']:.2f} "
            f"| {eff['mean_queue']:.2f} ± {eff['sd_queue']:.2f} "
            f"| {tr['mean_queue']:.2f} ± {tr['sd_queue']:.2f} "
            f"| {p['measured_queue'] / sim['mean_queue']:.2f} | {p['measured_queue'] / tr['mean_queue']:.2f} |"
        )
    lines += ["", "Growth: (q2 - q1) / (half the window), q1 and q2 the mean tasks per device in the two halves "
              "of the window (the simulator's stability verdict uses them too).", "",
              "| λ/λ* | measured growth (tasks/s/device) | q1 → q2 | verdict | sim α growth | percentile "
              "| sim α_eff growth | trace α_eff growth |", "|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(
            f"| {p['ratio']} | {p['growth']:+.3f} | {p['first_half_queue']:.2f} → {p['second_half_queue']:.2f} "
            f"| {'bounded' if p['bounded'] else 'grows'} | {p['sim']['growth']:+.3f} ± {p['sim']['sd_growth']:.3f} "
            f"| {p['percentile_growth']:.2f} "
            f"| {p['sim_eff']['growth']:+.3f} ± {p['sim_eff']['sd_growth']:.3f} "
            f"| {p['trace_eff']['growth']:+.3f} ± {p['trace_eff']['sd_growth']:.3f} |"
        )
    lines += ["", f"Long runs of the simulator ({args.steady_duration:.0f} s): " + "; ".join(
        f"λ/λ*={p['ratio']}: {'queue' if p['ratio'] < 1 else 'growth'} {p['steady']:.3g} at α, "
        f"{p['steady_eff']:.3g} at α_eff" for p in points)]
    return "\n".join(lines)


def plot(points: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(points), 1, figsize=(9, 3.1 * len(points)), sharex=True)
    for ax, p in zip(axes if len(points) > 1 else [axes], points, strict=False):
        for name, steps in p["series"]["devices"].items():
            xs = [max(t, 0.0) for t, _ in steps]
            ax.step(xs, [q for _, q in steps], where="post", lw=0.6, alpha=0.5, label=name)
        ax.plot(p["series"]["t"], p["series"]["mean"], color="black", lw=1.6, label="mean over devices")
        ax.axvspan(0, args.warmup, color="0.9", label="warm-up (left out)")
        if p["ratio"] < 1:
            ax.axhline(p["sim"]["mean_queue"], color="tab:red", ls="--", label="sim α: time-average")
            ax.axhline(p["trace_eff"]["mean_queue"], color="tab:green", ls=":", lw=2,
                       label="sim, this run's arrivals, α_eff")
            ax.axhline(p["measured_queue"], color="black", ls="-.", lw=1, label="measured time-average")
        else:
            xs = [args.warmup, args.duration]
            ax.plot(xs, [p["growth_intercept"] + p["growth"] * x for x in xs], color="black", ls="-.", lw=1,
                    label=f"least-squares line, {p['growth_fit']:+.2f} tasks/s")
        if p["ratio"] < 1:
            figures = (p["measured_queue"], p["sim"]["mean_queue"], p["trace_eff"]["mean_queue"], "tasks/device")
        else:
            figures = (p["growth"], p["sim"]["growth"], p["trace_eff"]["growth"], "tasks/s growth")
        ax.set_title(f"λ = {p['ratio']}·λ*: measured {figures[0]:.2f}, sim α {figures[1]:.2f}, "
                     f"sim (same arrivals, α_eff) {figures[2]:.2f} {figures[3]}", fontsize=9)
        ax.set_ylabel("tasks at device")
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    (axes[-1] if len(points) > 1 else axes).set_xlabel("seconds since the point started")
    fig.suptitle(f"Local mesh, n={args.devices} M={args.layers} k={args.proposers}, α={args.alpha} s deterministic "
                 f"(fake engine)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", "-n", type=int, default=3)
    parser.add_argument("--layers", "-M", type=int, default=1)
    parser.add_argument("--proposers", "-k", type=int, default=1)
    parser.add_argument("--alpha", type=float, default=0.25, help="Fake engine's service time (s).")
    parser.add_argument("--ratios", default="0.5,0.9,1.2", help="λ/λ* of the points, in order.")
    parser.add_argument("--duration", type=float, default=75.0, help="Seconds of arrivals per point.")
    parser.add_argument("--warmup", type=float, default=10.0, help="Seconds left out of the averages.")
    parser.add_argument("--drain", type=float, default=30.0, help="Longest wait for empty queues between points.")
    parser.add_argument("--reps", type=int, default=200, help="Simulator runs per point (seeds).")
    parser.add_argument("--trace-reps", type=int, default=100, help="Runs replaying the recorded arrivals.")
    parser.add_argument("--steady-duration", type=float, default=20_000.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--address-base", default="127.0.61")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--dir", help="Mesh directory, kept (default: a temporary one, removed at the end).")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "stability_mesh"),
                        help="Where results.json, samples.csv and the plot go.")
    parser.add_argument("--png", help="Plot path (default: OUT/stability_mesh.png).")
    args = parser.parse_args(argv)
    ratios = [float(r) for r in args.ratios.split(",")]
    star = lambda_star(args.layers, args.proposers, [args.alpha])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mesh_dir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="stability-mesh-"))
    settings = agent_settings("fake", "fake", args.alpha, (
        "fake_distribution=deterministic", "status_interval_s=0.5", "peer_stale_s=5", "task_timeout_s=600",
        "admission=accept", f"layers={args.layers}", f"proposers={args.proposers}", "policy=uniform",
    ))  # fmt: skip
    log(f"starting {args.devices} devices on {args.address_base}.x in {mesh_dir}")
    devices = localmesh.up(args.devices, mesh_dir, settings, address_base=args.address_base, port=args.port,
                           timeout_s=60)
    points: list[dict[str, Any]] = []
    statuses: StatusLog | None = None
    client: SubmitClient | None = None
    try:
        first = devices[0]
        statuses = StatusLog(first)
        client = SubmitClient(BrokerAddress(first.host, first.port), first.device)
        for d in devices:
            if client.status_of(d.device, wait_s=5) is None:
                raise SystemExit(f"no status from {d.device}")
        load = Load(client, [d.device for d in devices], args.layers, args.proposers,
                    timeout_s=args.duration + 4 * args.drain)
        for i, ratio in enumerate(ratios):
            point = run_point(ratio, ratio * star, args, devices, load, statuses)
            points.append(point)
            if i < len(ratios) - 1 and not drain(load, statuses, args.drain):
                log(f"  warning: queues not empty after {args.drain:.0f} s; the next point starts loaded")
        failed = [a for a in load.answered if not a[2]]
        if failed:
            log(f"{len(failed)} prompts failed, e.g. {failed[0][3]}")
    finally:
        if client is not None:
            client.close()
        if statuses is not None:
            statuses.close()
        localmesh.down(mesh_dir)
        log(f"mesh in {mesh_dir} is down")
    for point in points:
        exact = [store_figures(d.directory, point["start"] + args.warmup, point["end"]) for d in devices]
        point["store_queue"] = statistics.fmean(q for q, _ in exact)
        point["alpha_store"] = {d.device: a for d, (_, a) in zip(devices, exact, strict=False)}
    if not args.dir:
        shutil.rmtree(mesh_dir, ignore_errors=True)
    # α_eff per device, pooled over the points: all its busy seconds over all the tasks they completed.
    alpha_eff = []
    for d in devices:
        seconds = sum(p["busy"][d.device][0] for p in points)
        tasks = sum(p["busy"][d.device][1] for p in points)
        alpha_eff.append(per_task(seconds, tasks) or args.alpha)
    alpha_eff_t = tuple(alpha_eff)
    for point in points:
        add_simulations(point, args, alpha_eff_t)
    text = report(points, args, alpha_eff_t)
    print(text)
    for point in points:
        print(f"λ/λ*={point['ratio']}: α from statuses {_fmt_alphas(point['alpha_status'])}; α_eff from "
              f"statuses {_fmt_alphas(point['alpha_eff'])}; from stores {_fmt_alphas(point['alpha_store'])}")
    png = Path(args.png) if args.png else out / "stability_mesh.png"
    plot(points, args, png)
    with (out / "samples.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ratio", "device", "seconds", "queue"])
        for p in points:
            for name, steps in p["series"]["devices"].items():
                writer.writerows([p["ratio"], name, round(t, 3), q] for t, q in steps)
    body = {"args": vars(args), "alpha_eff": alpha_eff_t,
            "points": [{k: v for k, v in p.items() if k != "series"} for p in points]}
    (out / "results.json").write_text(json.dumps(body, indent=2))
    print(f"wrote {out / 'results.json'}, {out / 'samples.csv'} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
