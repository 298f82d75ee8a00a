"""What the HTTP API adds to a job: a request through `edge-agent api` against the same
submit made the way `edge-agent submit` makes it, on a mesh of fake engines.

    python -m benchmarks.api_overhead [--rounds 60] [--json]

Two fake devices (loopback 127.0.70.x), every inference a fixed 20 ms, the same
prompt with M=0 (one inference at the origin, so the mesh's own time is as small
and steady as it gets). Each round times, in turn:
1. submit: SubmitClient.submit on an open connection, as `edge-agent submit --json`
   makes it once Python has started (its start-up is reported apart: it is not the API's);
2. submit-stream: the same with the answer's tokens streamed, as `edge-agent submit` prints them;
3. api: POST /v1/chat/completions over a kept-alive HTTP connection, whole answer;
4. api-stream: the same with stream=true, read to `data: [DONE]`.
Reported: median and p90 of each, and the median of the per-round differences
api - submit and api-stream - submit-stream (the service's own cost; target
<= 20 ms). Bounded by --rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import httpx

from benchmarks.apiserve import KEY, served_mesh
from edge_agent.client.submit import SubmitClient
from edge_agent.wire.mqtt import BrokerAddress

PROMPT = "Why run small language models on single-board computers?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"submit": [], "submit-stream": [], "api": [], "api-stream": []}
    body = {"model": "dmoa-m0k0", "messages": [{"role": "user", "content": PROMPT}]}
    with served_mesh(2, "127.0.70", "fake", fake_seconds=0.02) as (url, devices):
        origin = devices[0]
        with SubmitClient(BrokerAddress(origin.host, origin.port), origin.device) as client, \
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
            for i in range(args.rounds + 3):
                t0 = time.perf_counter()
                client.submit(PROMPT, 0, 0)
                t1 = time.perf_counter()
                client.submit(PROMPT, 0, 0, on_token=lambda piece: None)
                t2 = time.perf_counter()
                http.post("/v1/chat/completions", json=body).raise_for_status()
                t3 = time.perf_counter()
                with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
                    lines = [line for line in response.iter_lines() if line]
                assert lines[-1] == "data: [DONE]"
                t4 = time.perf_counter()
                if i >= 3:  # the first rounds warm connections and caches
                    for name, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                        times[name].append(value * 1000)
        startup = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edge_agent", "submit", PROMPT, "-M", "0", "-k", "0", "-q",
                            "--broker", origin.broker], check=True, capture_output=True, timeout=60)
            startup.append((time.perf_counter() - t0) * 1000)
    report = {name: {"median_ms": round(statistics.median(v), 2),
                     "p90_ms": round(statistics.quantiles(v, n=10)[-1], 2)} for name, v in times.items()}
    for name, base in (("api", "submit"), ("api-stream", "submit-stream")):
        diffs = [a - s for a, s in zip(times[name], times[base], strict=True)]
        report[name][f"median_over_{base}_ms"] = round(statistics.median(diffs), 2)
    report["edge-agent submit process"] = {"median_ms": round(statistics.median(startup), 1)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, row in report.items():
        print(f"{name:<28} " + "  ".join(f"{k}={v}" for k, v in row.items()))
    worst = max(report["api"]["median_over_submit_ms"], report["api-stream"]["median_over_submit-stream_ms"])
    print(f"\nservice's own cost: {worst:.1f} ms at the median (target <= 20 ms): "
          f"{'OK' if worst <= 20 else 'OVER'}")


if __name__ == "__main__":
    main()
