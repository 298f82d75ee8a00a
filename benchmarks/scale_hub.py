"""Full mesh against hub, side by side: broker connections, idle CPU and job latency per board.

For each n (default 4, 8, 16) a full mesh and a hub mesh (3-node RabbitMQ cluster) of n
virtual devices run in turn on this machine, with the fake engine (--alpha seconds per
inference), and for each:

- connections: TCP connections of each board's mosquitto (bridges out and in, its agent),
  and the cluster's MQTT connections per node;
- idle CPU: CPU seconds of the boards' brokers, of their agents, and of the cluster's nodes
  over --idle seconds with no job running, as percent of one core;
- latency: --jobs jobs at M=2, k=2, one at a time, from every device in turn: median and p90.

    python -m benchmarks.scale_hub --sizes 4 8 16 --out benchmarks/scale_hub.json

Every mesh is torn down at the end of its measure, also on Ctrl-C. The machine is shared, so
compare the two topologies at the same n (they ran minutes apart), not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from edge_agent.client.submit import SubmitClient
from edge_agent.ops import localhub as hubmesh
from edge_agent.ops import localmesh
from edge_agent.ops.localmesh import agent_settings
from edge_agent.wire.mqtt import BrokerAddress


def group(pgid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def connections(pid: int, port: int = 0) -> int:
    """Established TCP connections of a process (with port: only those to its own listening port)."""
    try:
        return sum(1 for c in psutil.Process(pid).net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED
                   and (not port or c.laddr.port == port))
    except psutil.Error:
        return 0


def measure(n: int, topology: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    settings = agent_settings("x", "fake", args.alpha, ("admission=accept", "status_interval_s=2.0",
                                                       "peer_stale_s=10.0"))
    hub = topology == "hub"
    started = time.monotonic()
    devices = localmesh.up(n, root, settings, address_base="127.0.73" if hub else "127.0.72",
                           timeout_s=300, hub_nodes=3 if hub else 0, hub_base="127.0.74")
    try:
        ready_s = time.monotonic() - started
        loaded = hubmesh.load_hub(root) if hub else None
        cluster = loaded.cluster if loaded else None
        brokers = [psutil.Process(d.broker_pid) for d in devices]
        agents = [p for d in devices for p in group(d.agent_pid)]
        nodes = [p for node in cluster.nodes for p in group(node.pid)] if cluster else []
        time.sleep(args.settle)  # let start-up work (cluster boot, first statuses) finish before measuring idle
        before = (cpu_seconds(brokers), cpu_seconds(agents), cpu_seconds(nodes))
        time.sleep(args.idle)  # the idle window itself: nothing to wait for, only time to pass
        after = (cpu_seconds(brokers), cpu_seconds(agents), cpu_seconds(nodes))
        idle = [100 * (a - b) / args.idle for a, b in zip(after, before, strict=True)]
        conns = [connections(d.broker_pid) for d in devices]
        hub_conns = [connections(max(group(node.pid), key=lambda p: p.memory_info().rss).pid, node.mqtt_port)
                     for node in cluster.nodes] if cluster else []
        latencies = []
        for j in range(args.jobs):
            origin = devices[j % n]
            with SubmitClient(BrokerAddress(origin.host, origin.port), origin.device) as client:
                t0 = time.monotonic()
                answer = client.submit(f"job {j}", 2, 2, timeout_s=120)
                latencies.append(time.monotonic() - t0)
            if not answer.ok:
                raise SystemExit(f"{topology} n={n}: job {j} failed: {answer.error}")
        latencies.sort()
        return {"n": n, "topology": topology, "ready_s": round(ready_s, 1),
                "bridge_links": n * (n - 1) if not hub else n,
                "board_broker_connections": statistics.mean(conns),
                "hub_node_mqtt_connections": hub_conns,
                "idle_cpu_boards_brokers_pct": round(idle[0], 2), "idle_cpu_agents_pct": round(idle[1], 2),
                "idle_cpu_hub_pct": round(idle[2], 2),
                "idle_cpu_broker_per_board_pct": round(idle[0] / n, 3),
                "latency_median_s": round(statistics.median(latencies), 3),
                "latency_p90_s": round(latencies[int(0.9 * (len(latencies) - 1))], 3)}
    finally:
        localmesh.down(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--alpha", type=float, default=0.05, help="fake engine seconds per inference")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the idle CPU window")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds left to settle before it")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        for topology in ("full", "hub"):
            with tempfile.TemporaryDirectory(prefix=f"scale-{topology}-{n}-") as tmp:
                row = measure(n, topology, args, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
