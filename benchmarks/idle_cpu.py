"""Goal 4: what an idle local mesh costs in CPU, per process kind, as the mesh grows.

For each size n, a local mesh of fake-engine devices as `edge-agent mesh up --engine fake` starts
it (its settings: a status every 1 s, edge_agent/commands/mesh.py LOCAL_DEFAULTS) idles for a
settling time, then the CPU time (user + system, psutil) of every broker, agent and model
worker is read at the start and end of a window: cores = CPU seconds ÷ wall seconds. On edge-1's
broker the statuses heard in the window are counted and their payload bytes summed.

Figure: the largest mesh's total cores (target <= 0.25 for 16 devices) against the baseline
"n × the per-board cost of a 1-device mesh" measured in the same run (a board that hears no
peer): their ratio is what hearing n-1 peers costs. Per-board figures come per process kind,
and a least-squares line per-board cores = a + b·n gives where a full bridge mesh stops being
sensible: the n at which one board's idle cost reaches --budget cores (default 0.05 of a core
of this machine, about one fifth of a Pi 5 core's worth).

    python -m benchmarks.idle_cpu [--quick] [--sizes 1 4 8 16] [--window 30] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.common import Figure, load_average, log, mesh, print_figures

ALL_STATUS = "dmoa/v1/from/+/status"  # edge_agent/wire/topics.py


def _cpu(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def _workers(agent_pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(agent_pid).children()]
    except psutil.Error:
        return []


class StatusCounter:
    def __init__(self, host: str, port: int) -> None:
        self.count, self.bytes = 0, 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-idle-observer")
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.subscribe(ALL_STATUS, qos=0)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.count += 1
            self.bytes += len(message.payload)

    def take(self) -> tuple[int, int]:
        with self._lock:
            out = (self.count, self.bytes)
            self.count, self.bytes = 0, 0
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def measure(n: int, window_s: float, settle_s: float) -> dict[str, Any]:
    with mesh(n, "fake", 0.5) as devices:
        time.sleep(settle_s)
        observer = StatusCounter(devices[0].host, devices[0].port)
        kinds: dict[str, list[int]] = {
            "broker": [d.broker_pid for d in devices],
            "agent": [d.agent_pid for d in devices],
            "worker": [w for d in devices for w in _workers(d.agent_pid)],
        }
        load_before = load_average()
        before = {k: [_cpu(p) for p in pids] for k, pids in kinds.items()}
        observer.take()
        t0 = time.monotonic()
        time.sleep(window_s)
        wall = time.monotonic() - t0
        after = {k: [_cpu(p) for p in pids] for k, pids in kinds.items()}
        count, size = observer.take()
        observer.close()
    cores = {k: (sum(after[k]) - sum(before[k])) / wall for k in kinds}
    row = {"n": n, "window_s": round(wall, 1), "total_cores": round(sum(cores.values()), 4),
           **{f"{k}_cores_per_board": round(v / n, 5) for k, v in cores.items()},
           "statuses_per_s_on_one_broker": round(count / wall, 2),
           "status_payload_bytes": round(size / count) if count else 0,
           "load": f"{load_before} -> {load_average()}"}
    log(f"  n={n}: {row}")
    return row


def fit(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Least squares per-board cores = a + b·n."""
    xs = [r["n"] for r in rows]
    ys = [r["total_cores"] / r["n"] for r in rows]
    if len(xs) < 2:
        return ys[0], 0.0
    b, a = statistics.linear_regression(xs, ys)
    return a, b


def run(quick: bool = False, sizes: list[int] | None = None, window_s: float | None = None,
        budget: float = 0.05) -> list[Figure]:
    sizes = sizes or ([1, 16] if quick else [1, 4, 8, 16])
    window_s = window_s or (10.0 if quick else 30.0)
    rows = [measure(n, window_s, settle_s=3.0 if quick else 5.0) for n in sorted(sizes)]
    one, big = rows[0], rows[-1]
    a, b = fit(rows)
    limit = (budget - a) / b if b > 0 else float("inf")
    detail = {"load": big["load"], "rows": rows, "fit_per_board_cores": {"a": round(a, 5), "b_per_device": round(b, 6)},
              "budget_cores_per_board": budget, "n_at_budget": round(limit, 1)}
    n = big["n"]
    figures = [Figure("4", f"idle {n}-device mesh, total cores", big["total_cores"], one["total_cores"] * n,
                      "cores", f"{n} x a 1-device mesh", "<= 0.25 cores", big["total_cores"] <= 0.25,
                      len(rows), detail)]
    for kind in ("agent", "broker", "worker"):
        key = f"{kind}_cores_per_board"
        figures.append(Figure("4", f"idle {kind} per board at n={n}", big[key], one[key], "cores",
                              "same at n=1", "", None, 1))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--window", type=float)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print_figures(run(args.quick, args.sizes, args.window, args.budget), args.json)


if __name__ == "__main__":
    main()
