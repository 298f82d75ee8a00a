"""Goals 1 and 2: what the mesh's coordination adds to a job, on a 4-device local mesh.

floor (goal 1): fake engine at 0 s per inference, so a job's time is coordination only (task
  messages through the bridges, store commits, the worker pipe, aggregation). Figure: median
  milliseconds per layer (end-to-end seconds of a job ÷ its M+1 layers) for M=0 and M=2 k=2;
  target <= 10 ms. Baseline, same run and mesh: one MQTT QoS 1 round trip across a bridge
  (a client on edge-1's broker to one on edge-2's and back), the least one layer's task and
  result can cost; the ratio says how many such round trips a layer costs.

critical (goal 2): fake engine at 0.5 s, M=0, M=1 k=2, M=2 k=2. Figure: end-to-end seconds of
  a job (client's clock, submit to answer) ÷ its critical path of inference (the slowest
  answer of each layer, from the answer's own inference records, summed); median over jobs;
  target <= 1.02.

Jobs run one at a time from a client on edge-1's broker; a few warm-up jobs are not counted.

    python -m benchmarks.mesh_latency [floor|critical] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import queue
import socket
import time
import uuid
from collections import defaultdict
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.common import Figure, load_average, log, median, mesh, print_figures

PROMPT = "Why run small language models on single-board computers?"
NAMESPACE = "dmoa/v1"  # a bridge forwards to/<peer>/# (edge_agent/wire/topics.py); no agent reads .../bench/


def _paho(host: str, port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    client.connect(host, port, keepalive=30)
    sock = client.socket()
    if isinstance(sock, socket.socket):  # as the agents' clients do (edge_agent/wire/mqtt.py): no Nagle delay
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    return client


def bridge_round_trip(devices: list[Any], rounds: int) -> list[float]:
    """Milliseconds of a QoS 1 ping from edge-1's broker to edge-2's and its pong back."""
    a, b = devices[0], devices[1]
    ping, pong = f"{NAMESPACE}/to/{b.device}/bench/ping", f"{NAMESPACE}/to/{a.device}/bench/pong"
    back: queue.Queue[bytes] = queue.Queue()
    ready: queue.Queue[int] = queue.Queue()
    left, right = _paho(a.host, a.port), _paho(b.host, b.port)
    try:
        def echo(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            right.publish(pong, message.payload, qos=1)

        right.on_message = echo
        left.on_message = lambda c, u, m: back.put(bytes(m.payload))
        right.on_subscribe = left.on_subscribe = lambda *args: ready.put(1)
        right.subscribe(ping, qos=1)
        left.subscribe(pong, qos=1)
        ready.get(timeout=10)
        ready.get(timeout=10)
        times = []
        for i in range(rounds + 3):
            payload = str(i).encode()
            t0 = time.perf_counter()
            left.publish(ping, payload, qos=1)
            while back.get(timeout=10) != payload:
                pass
            if i >= 3:  # the first go through a bridge that just saw its first message
                times.append((time.perf_counter() - t0) * 1000)
        return times
    finally:
        for c in (left, right):
            c.loop_stop()
            c.disconnect()


def _jobs(client: Any, layers: int, proposers: int, count: int, warm: int = 2) -> list[tuple[float, Any]]:
    """(client-side seconds, answer) of count jobs run one after the other."""
    out = []
    for i in range(count + warm):
        t0 = time.perf_counter()
        answer = client.submit(PROMPT, layers, proposers, timeout_s=120)
        seconds = time.perf_counter() - t0
        if not answer.ok:
            raise RuntimeError(f"job failed: {answer.error}")
        if i >= warm:
            out.append((seconds, answer))
    return out


def _client(device: Any) -> Any:
    from edge_agent.client.submit import SubmitClient
    from edge_agent.wire.mqtt import BrokerAddress

    return SubmitClient(BrokerAddress(device.host, device.port), device.device)


def critical_path(answer: Any) -> float:
    """The slowest answer of each layer, summed."""
    slowest: dict[int, float] = defaultdict(float)
    for inference in answer.inferences:
        slowest[inference.layer] = max(slowest[inference.layer], inference.seconds)
    return sum(slowest.values())


def floor(quick: bool = False, devices_n: int = 4) -> list[Figure]:
    jobs = 10 if quick else 30
    figures = []
    with mesh(devices_n, "fake", 0.0) as devices:
        load_before = load_average()
        trips = bridge_round_trip(devices, jobs * 2)
        trip = median(trips)
        log(f"  bridge round trip: median {trip:.2f} ms")
        with _client(devices[0]) as client:
            for layers, proposers in ((0, 0), (2, 2)):
                runs = _jobs(client, layers, proposers, jobs)
                per_layer = [s * 1000 / (layers + 1) for s, _ in runs]
                agent_side = [a.latency_s * 1000 / (layers + 1) for _, a in runs]
                value = median(per_layer)
                log(f"  M={layers} k={proposers}: {value:.1f} ms/layer")
                figures.append(Figure(
                    "1", f"coordination floor M={layers} k={proposers}, ms per layer", value, trip, "ms",
                    "bridge round trip", "<= 10 ms/layer", value <= 10, len(runs),
                    {"devices": devices_n, "p90_ms": sorted(per_layer)[int(len(per_layer) * 0.9) - 1],
                     "agent_latency_ms_per_layer": round(median(agent_side), 2),
                     "load": f"{load_before} -> {load_average()}"}))
    return figures


def critical(quick: bool = False, devices_n: int = 4, seconds: float = 0.5) -> list[Figure]:
    jobs = 4 if quick else 10
    figures = []
    with mesh(devices_n, "fake", seconds) as devices, _client(devices[0]) as client:
        for layers, proposers in ((0, 0), (1, 2), (2, 2)):
            load_before = load_average()
            runs = _jobs(client, layers, proposers, jobs, warm=1)
            ratios = [s / critical_path(a) for s, a in runs]
            walls = [s for s, _ in runs]
            paths = [critical_path(a) for _, a in runs]
            r = median(ratios)
            log(f"  M={layers} k={proposers}: end-to-end / critical path {r:.4f}")
            figures.append(Figure(
                "2", f"end-to-end / critical path M={layers} k={proposers} at {seconds} s", median(walls),
                median(paths), "s", "critical path of inference", "<= 1.02", r <= 1.02, len(runs),
                {"devices": devices_n, "overhead_ms_per_layer": round(
                    median([(w - p) * 1000 / (layers + 1) for w, p in zip(walls, paths, strict=True)]), 1),
                 "load": f"{load_before} -> {load_average()}"}, ratio=r))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", nargs="?", choices=["floor", "critical", "both"], default="both")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = []
    if args.which in ("floor", "both"):
        figures += floor(args.quick)
    if args.which in ("critical", "both"):
        figures += critical(args.quick)
    print_figures(figures, args.json)


if __name__ == "__main__":
    main()
