"""Time to the first streamed token against time to the whole answer, through the API.

    python -m benchmarks.api_stream_latency [--requests 5] [--json]

A 3-device local mesh of the real model (loopback 127.0.71.x, one llama.cpp
thread per device), `edge-agent api` on edge-1, and the official openai
package streaming `dmoa-m1k2` (M=1, k=2: three proposers, then edge-1
aggregates). Requests run one after another, each a different prompt, so each
is a whole job on an idle mesh. Per request: seconds to the first content
token, seconds to the last one (the whole answer), tokens streamed, and the
final aggregation's share of the job. Bounded: 300 s per request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import openai

from benchmarks.apiserve import KEY, served_mesh

PROMPTS = [
    "Give three reasons to run small language models on single-board computers.",
    "How do bees communicate with each other?",
    "Explain what a message broker does, for a beginner.",
    "What should I pack for a day of hiking in the mountains?",
    "Why does bread go stale?",
    "Describe how a refrigerator keeps food cold.",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with served_mesh(3, "127.0.71", "llama") as (url, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=300)
        for i in range(args.requests):
            started = time.monotonic()
            first = last = 0.0
            tokens, final_s, answer, finish = 0, 0.0, "", ""
            for chunk in client.chat.completions.create(
                    model="dmoa-m1k2", stream=True,
                    messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]):
                for choice in chunk.choices:
                    if choice.delta.content:
                        first = first or time.monotonic() - started
                        last = time.monotonic() - started
                        tokens += 1
                        answer += choice.delta.content
                    if choice.finish_reason:
                        dmoa = (chunk.model_extra or {}).get("dmoa", {})
                        final = [x for x in dmoa.get("inferences", []) if x["role"] == "aggregate"]
                        final_s = final[0]["seconds"] if final else 0.0
                        finish = choice.finish_reason
            rows.append({"first_token_s": round(first, 2), "whole_answer_s": round(last, 2), "tokens": tokens,
                         "final_inference_s": round(final_s, 2), "finish": finish,
                         "ends": answer.rstrip()[-40:]})
    summary = {k: round(statistics.median(r[k] for r in rows), 2)
               for k in ("first_token_s", "whole_answer_s", "tokens", "final_inference_s")}
    if args.json:
        print(json.dumps({"requests": rows, "median": summary}, indent=2))
        return
    print("| request | first token (s) | whole answer (s) | tokens streamed | final inference (s) | finish |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(rows, 1):
        print(f"| {i} | {r['first_token_s']} | {r['whole_answer_s']} | {r['tokens']} | {r['final_inference_s']} "
              f"| {r['finish']} |")
    print(f"| median | {summary['first_token_s']} | {summary['whole_answer_s']} | {summary['tokens']} "
          f"| {summary['final_inference_s']} | |")


if __name__ == "__main__":
    main()
