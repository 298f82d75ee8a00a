"""Discrete-event simulator of a DMoA mesh.

It checks Theorem 1 (see edge_agent.theory.stability) and compares peer-choice
policies without boards. Each of n devices has one user submitting prompts as
a Poisson process of rate λ and one FCFS queue with a single server (the
model). A prompt at origin o runs M layers; layer m sends one task to o and
one to each of k peers picked by `choose_peers` (the agent's own function, fed
each device's queue length including the task in service and its α); layer
m+1 starts only when all k+1 tasks of layer m are done; after layer M the
origin alone aggregates. Latency is the end of that aggregation minus arrival.

Service times have mean α_i on device i: exponential, deterministic, or
replayed (drawn from recorded seconds, rescaled so their mean is α_i).
Arrivals are Poisson, or a recorded trace of (time, origin) replayed as is
(`arrivals`), which lets a run on real agents be compared with the model
under the very same arrivals.

Stability verdict: the total number of tasks in the mesh is sampled at evenly
spaced times after the warm-up; the run is called stable when the per-device
average of the second half of the samples is at most GROWTH_LIMIT times the
first half's plus GROWTH_SLACK tasks. A stable queue fluctuates around one
level (ratio near 1); an overloaded one grows linearly (ratio (3+w)/(1+3w),
about 2.4 for a warm-up fraction w = 0.1; about 2.1 measured, the start is
not quite linear); a queue at exactly ρ = 1 grows like √t (about 1.6). So
the verdict tracks the theorem well away from ρ = 1, and near ρ = 1 it needs
durations long against the queue's relaxation time, about α / (1 - √ρ)².
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Literal

from edge_agent.errors import ConfigError
from edge_agent.theory.peerchoice import POLICIES, PeerLoad, Policy, choose_peers
from edge_agent.theory.stability import lambda_star

Service = Literal["exponential", "deterministic", "replay"]
SERVICES: tuple[Service, ...] = ("exponential", "deterministic", "replay")
GROWTH_LIMIT = 1.3
GROWTH_SLACK = 0.5
QUEUE_SAMPLES = 400
_ARRIVAL, _DONE = 0, 1


@dataclass(frozen=True)
class SimConfig:
    """One simulated mesh; times in seconds, rate in prompts/s per user."""

    devices: int
    layers: int
    proposers: int
    rate: float
    alphas: tuple[float, ...]
    service: Service = "exponential"
    replay: tuple[float, ...] = ()
    policy: Policy = "uniform"
    duration: float = 10_000.0
    seed: int = 0
    warmup: float = 0.1  # fraction of duration left out of latency and queue averages
    max_events: int = 5_000_000
    arrivals: tuple[tuple[float, int], ...] = ()
    """A recorded trace of (seconds, origin device index) replacing the Poisson arrivals;
    `rate` then only names the load (λ*, ρ)."""

    def __post_init__(self) -> None:
        if self.devices < 1 or len(self.alphas) != self.devices:
            raise ConfigError(f"need one alpha per device ({self.devices}), got {len(self.alphas)}")
        if any(not math.isfinite(a) or a <= 0 for a in self.alphas):
            raise ConfigError("every alpha must be a positive number of seconds")
        if self.layers < 0 or not 0 <= self.proposers <= self.devices - 1:
            raise ConfigError(f"need M >= 0 and 0 <= k <= n-1 = {self.devices - 1}")
        if not math.isfinite(self.rate) or self.rate <= 0:
            raise ConfigError("rate must be a positive number of prompts per second")
        if self.service not in SERVICES:
            raise ConfigError(f"unknown service {self.service!r}; choose one of {', '.join(SERVICES)}")
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        if self.service == "replay" and (not self.replay or min(self.replay) < 0 or sum(self.replay) <= 0):
            raise ConfigError("replay service needs recorded durations >= 0 with a positive mean")
        if not math.isfinite(self.duration) or self.duration <= 0 or not 0 <= self.warmup < 1:
            raise ConfigError("duration must be > 0 and warmup in [0, 1)")
        if any(not (math.isfinite(t) and t >= 0 and 0 <= d < self.devices) for t, d in self.arrivals):
            raise ConfigError("arrival trace entries must be (seconds >= 0, device index < devices)")

    @property
    def lambda_star(self) -> float:
        return lambda_star(self.layers, self.proposers, self.alphas)

    def with_rate(self, rate: float) -> SimConfig:
        return replace(self, rate=rate)


@dataclass(frozen=True)
class SimResult:
    """What one run measured; queue lengths count the task in service."""

    rate: float
    lambda_star: float
    rho: float
    mean_latency: float  # nan when no prompt arriving after the warm-up completed
    p95_latency: float
    mean_queue: float  # time-average per device, averaged over devices
    final_queue: float  # mean over devices at the end
    max_queue: int
    completed: int
    first_half_queue: float  # per-device sample means used by the verdict
    second_half_queue: float
    stable: bool
    device_queues: tuple[float, ...]
    end_time: float
    truncated: bool  # the event cap ended the run before `duration`

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
        return out


def _sampler(config: SimConfig, rng: random.Random) -> Callable[[int], float]:
    alphas = config.alphas
    if config.service == "deterministic":
        return lambda d: alphas[d]
    if config.service == "exponential":
        return lambda d: rng.expovariate(1.0 / alphas[d])
    recorded = config.replay
    scale = [a * len(recorded) / sum(recorded) for a in alphas]
    return lambda d: rng.choice(recorded) * scale[d]


def is_bounded(first_half: float, second_half: float) -> bool:
    """The verdict of the module docstring, on per-device queue means of the two halves."""
    return second_half <= GROWTH_LIMIT * first_half + GROWTH_SLACK


class _Job:
    __slots__ = ("origin", "arrival", "layer", "pending")

    def __init__(self, origin: int, arrival: float) -> None:
        self.origin, self.arrival, self.layer, self.pending = origin, arrival, 0, 0


def simulate(config: SimConfig) -> SimResult:
    """Run one simulation; the same config (seed included) gives the same result."""
    n, layers, k = config.devices, config.layers, config.proposers
    arrivals = random.Random(f"{config.seed}:arrivals")
    choices = random.Random(f"{config.seed}:peers")
    service = _sampler(config, random.Random(f"{config.seed}:service"))
    names = [f"d{i}" for i in range(n)]
    index = {name: i for i, name in enumerate(names)}
    queues: list[deque[_Job]] = [deque() for _ in range(n)]
    area, last = [0.0] * n, [0.0] * n
    heap: list[tuple[float, int, int, int]] = []
    seq = 0
    total = max_queue = 0
    latencies: list[float] = []
    samples: list[int] = []
    warm_t = config.warmup * config.duration
    sample_step = (config.duration - warm_t) / QUEUE_SAMPLES
    next_sample = warm_t
    warm_area: list[float] | None = None

    def push(t: float, kind: int, device: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, device))

    def enqueue(d: int, job: _Job, now: float) -> None:
        nonlocal total, max_queue
        q = queues[d]
        area[d] += len(q) * (now - last[d])
        last[d] = now
        q.append(job)
        total += 1
        max_queue = max(max_queue, len(q))
        if len(q) == 1:
            push(now + service(d), _DONE, d)

    def advance(job: _Job, now: float) -> None:
        if job.layer < layers:
            job.layer += 1
            loads = [PeerLoad(names[d], len(queues[d]), config.alphas[d]) for d in range(n)]
            peers = choose_peers(loads, k, config.policy, choices, exclude=(names[job.origin],))
            targets = [job.origin] + [index[p] for p in peers]
        elif job.layer == layers:
            job.layer += 1
            targets = [job.origin]
        else:
            if job.arrival >= warm_t:
                latencies.append(now - job.arrival)
            return
        job.pending = len(targets)
        for d in targets:
            enqueue(d, job, now)

    poisson = not config.arrivals
    if poisson:
        for d in range(n):
            push(arrivals.expovariate(config.rate), _ARRIVAL, d)
    for t, d in config.arrivals:
        push(t, _ARRIVAL, d)
    events, now = 0, 0.0
    while heap and heap[0][0] <= config.duration and events < config.max_events:
        now, _, kind, d = heapq.heappop(heap)
        events += 1
        while next_sample <= now and len(samples) < QUEUE_SAMPLES:
            samples.append(total)
            next_sample += sample_step
        if warm_area is None and now >= warm_t:
            warm_area = [area[i] + len(queues[i]) * (warm_t - last[i]) for i in range(n)]
        if kind == _ARRIVAL:
            if poisson:
                push(now + arrivals.expovariate(config.rate), _ARRIVAL, d)
            advance(_Job(d, now), now)
            continue
        q = queues[d]
        area[d] += len(q) * (now - last[d])
        last[d] = now
        job = q.popleft()
        total -= 1
        if q:
            push(now + service(d), _DONE, d)
        job.pending -= 1
        if job.pending == 0:
            advance(job, now)

    truncated = events >= config.max_events and bool(heap) and heap[0][0] <= config.duration
    end = now if truncated else config.duration
    while not truncated and len(samples) < QUEUE_SAMPLES:
        samples.append(total)
    for i in range(n):
        area[i] += len(queues[i]) * (end - last[i])
    base = warm_area if warm_area is not None else [0.0] * n
    span = max(end - (warm_t if warm_area is not None else 0.0), 1e-12)
    device_queues = tuple((area[i] - base[i]) / span for i in range(n))
    half = len(samples) // 2
    first = sum(samples[:half]) / max(half, 1) / n
    second = sum(samples[half:]) / max(len(samples) - half, 1) / n
    latencies.sort()
    return SimResult(
        rate=config.rate,
        lambda_star=config.lambda_star,
        rho=config.rate / config.lambda_star,
        mean_latency=sum(latencies) / len(latencies) if latencies else math.nan,
        p95_latency=latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else math.nan,
        mean_queue=sum(device_queues) / n,
        final_queue=total / n,
        max_queue=max_queue,
        completed=len(latencies),
        first_half_queue=first,
        second_half_queue=second,
        stable=half > 0 and is_bounded(first, second),
        device_queues=device_queues,
        end_time=end,
        truncated=truncated,
    )
