"""How the TUI keeps up with a busy mesh: 16 simulated devices × 2 statuses per second.

    python -m benchmarks.tui_load [--seconds 10] [--json]

A real mosquitto (loopback 127.0.20.200) receives the statuses of 16 simulated
devices, each publishing twice a second with a sequence number in `current`,
plus the progress events of a few jobs. The TUI runs headless (Textual's
compositor renders every frame; only the terminal write is skipped) and is
sampled every 50 ms:

1. table lag: for each device, how long the newest status has gone unshown
   (0 when the table shows it): p50 / p95 / max, and p95 over the 0.5 s
   status period (target < 1: the table is never a full heartbeat behind);
2. key-press latency: every 0.25 s a key (m: next M) is posted to the app as
   a terminal would, timed until its action has run: p50 / p95 / max, and
   p95 over a 100 ms budget (target < 1). (Pilot.press is not used: it also
   waits for every widget to go idle, which a live feed never lets happen.)
Bounded: the run stops after --seconds, plus at most 30 s to start and stop.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import random
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from textual import events
from textual.widgets.data_table import CellDoesNotExist

from edge_agent.tui.app import MeshApp, make_app
from edge_agent.tui.widgets.devices import DevicesTable
from edge_agent.wire import topics
from edge_agent.wire.messages import Progress, ProgressEvent, Status
from edge_agent.wire.mqtt import BrokerAddress, MeshClient

HOST, PORT = "127.0.20.200", 1883
# A simulated job's progress events, one per call: (event, layer, answers in).
JOB_STEPS: tuple[tuple[ProgressEvent, int, int], ...] = (
    ("accepted", 0, 0), ("dispatched", 1, 0), ("answer", 1, 1), ("answer", 1, 2), ("layer-done", 1, 3), ("done", 2, 0))
DEVICES = [f"bench-{i:02d}" for i in range(1, 17)]
RATE_HZ = 2.0


def start_broker(directory: Path) -> subprocess.Popen[bytes]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {PORT} {HOST}\nallow_anonymous true\npersistence false\n"
                    f"user {getpass.getuser()}\nset_tcp_nodelay true\n")
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((HOST, PORT)) == 0:
                return broker
        time.sleep(0.05)
    broker.kill()
    raise SystemExit(f"mosquitto did not open {HOST}:{PORT}")


class Publisher(threading.Thread):
    """Round-robin statuses at 16 × RATE_HZ, evenly spaced; a job event every 0.25 s."""

    def __init__(self, seconds: float) -> None:
        super().__init__(name="bench-publisher", daemon=True)
        self.seconds = seconds
        self.sent: dict[str, list[float]] = {d: [] for d in DEVICES}
        """Per device, the monotonic time each status was published; its index is its sequence number."""
        self.client = MeshClient("bench-publisher", BrokerAddress(HOST, PORT))
        self.rng = random.Random(7)

    def run(self) -> None:
        queues = {d: 0 for d in DEVICES}
        period = 1.0 / (RATE_HZ * len(DEVICES))
        start = time.monotonic()
        tick = 0
        while time.monotonic() - start < self.seconds:
            device = DEVICES[tick % len(DEVICES)]
            queues[device] = max(0, queues[device] + self.rng.choice((-1, 0, 1)))
            seq = len(self.sent[device])
            status = Status(device=device, online=True, ts=time.time(), model="bench", queue=queues[device],
                            busy=True, current=f"propose {seq:08d} layer 1", alpha=1.5, tokens_per_s=9.0,
                            lam=0.02, layers=1, proposers=2, cpu=50.0, memory=40.0, temperature=55.0)
            self.sent[device].append(time.monotonic())
            self.client.publish(topics.status(device), status.encode(), qos=1, retain=True)
            if tick % 8 == 0:
                self._job_event(tick // 8)
            tick += 1
            time.sleep(max(0.0, start + tick * period - time.monotonic()))

    def _job_event(self, n: int) -> None:
        job, step = divmod(n, len(JOB_STEPS))
        origin = DEVICES[job % len(DEVICES)]
        kind, layer, answers = JOB_STEPS[step]
        event = Progress(job_id=f"benchjob{job:04d}", origin=origin, event=kind, layer=layer, layers=1,
                         proposers=2, answers_in=answers, expected=3 if layer == 1 else 0, seconds=3.0)
        self.client.publish(topics.progress(origin), event.encode(), qos=0)


def shown_sequence(table: DevicesTable, device: str) -> int | None:
    try:
        cell = table.get_cell(device, "state")
    except CellDoesNotExist:  # row not added yet
        return None
    parts = str(cell).split()
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


async def press_latency(app: MeshApp) -> float:
    before = app.moa_layers
    t0 = time.perf_counter()
    app.post_message(events.Key("m", "m"))
    while app.moa_layers == before:
        await asyncio.sleep(0.001)
    return time.perf_counter() - t0


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max": ordered[-1], "n": len(values)}


async def measure(seconds: float) -> dict[str, Any]:
    publisher = Publisher(seconds)
    publisher.client.connect(timeout_s=5)
    app = make_app(f"{HOST}:{PORT}")
    lags: list[float] = []
    keys: list[float] = []
    async with app.run_test(size=(140, 44)):
        table = app.query_one(DevicesTable)
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        publisher.start()
        next_key = time.monotonic() + 1.0
        while publisher.is_alive():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for device in DEVICES:
                sent = publisher.sent[device]
                shown = shown_sequence(table, device)
                if not sent or shown is None:
                    continue
                lags.append(0.0 if shown >= len(sent) - 1 else now - sent[shown + 1])
            if now >= next_key:
                keys.append(await press_latency(app))
                next_key = now + 0.25
        cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    publisher.client.close()
    sent_total = sum(len(s) for s in publisher.sent.values())
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    lag, key = percentiles(lags), percentiles(keys)
    return {
        "devices": len(DEVICES), "seconds": round(wall1 - wall0, 2), "statuses": sent_total,
        "statuses_per_s": round(sent_total / (wall1 - wall0), 1),
        "table_lag_s": lag, "table_lag_p95_over_status_period": lag["p95"] * RATE_HZ,
        "key_latency_s": key, "key_latency_p95_over_100ms": key["p95"] / 0.1,
        "process_cpu_share": round(cpu / (wall1 - wall0), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tui-load-") as tmp:
        broker = start_broker(Path(tmp))
        try:
            result = asyncio.run(asyncio.wait_for(measure(args.seconds), args.seconds + 30))
        finally:
            broker.terminate()
            broker.wait(10)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    lag, key = result["table_lag_s"], result["key_latency_s"]
    print(f"{result['devices']} devices, {result['statuses']} statuses in {result['seconds']} s "
          f"({result['statuses_per_s']}/s); TUI process CPU {result['process_cpu_share']:.0%} of one core")
    print(f"table lag behind newest status: p50 {lag['p50']:.3f} s, p95 {lag['p95']:.3f} s, max {lag['max']:.3f} s "
          f"over {lag['n']} samples; p95 / status period = {result['table_lag_p95_over_status_period']:.2f}")
    print(f"key-press latency: p50 {key['p50'] * 1000:.1f} ms, p95 {key['p95'] * 1000:.1f} ms, "
          f"max {key['max'] * 1000:.1f} ms over {key['n']} presses; p95 / 100 ms = "
          f"{result['key_latency_p95_over_100ms']:.2f}")


if __name__ == "__main__":
    main()
