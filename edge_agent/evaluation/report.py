"""The run's report: DIR/report.md (a table shaped like the paper's Tables I and
II, then details), DIR/report.json (the same figures for programs) and
DIR/report.png (accuracy, latency and queue size per configuration).

Every figure is computed from the configuration's records.jsonl (and, for the
cross-check column, its queue_samples.jsonl); see docs/evaluation.md.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError
from edge_agent.evaluation.configs import Config
from edge_agent.evaluation.dataset import Prompt
from edge_agent.evaluation.judge import WinRate, win_rate
from edge_agent.evaluation.queues import QueueStats, sampled_mean, time_average_queue, windows
from edge_agent.evaluation.records import ConfigRecords

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
REPORT_PNG = "report.png"


@dataclass(frozen=True)
class Summary:
    config: str
    label: str
    layers: int
    proposers: int
    prompts: int
    answered: int
    failed: int
    degraded: int
    """Answered with fewer peers than k (too few live devices at the time)."""
    inferences: int
    mean_latency_s: float | None
    queue: QueueStats | None
    sampled_queue: float | None
    alpha_max: float | None
    slowest_device: str
    rate: float
    rho: float | None
    measured_rate: float | None
    accuracy: WinRate | None
    judged: int
    unjudged: int

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["queue_size"] = self.queue.mean if self.queue else None
        return body


def alpha_by_device(records: ConfigRecords) -> dict[str, float]:
    """Mean inference time per device over the run's successful inferences."""
    times: dict[str, list[float]] = {}
    for inference in records.inferences:
        if inference.ok:
            times.setdefault(inference.device, []).append(inference.seconds)
    return {d: sum(v) / len(v) for d, v in sorted(times.items())}


def summarize(config: Config, prompts: list[Prompt], records: ConfigRecords, samples: list[dict[str, Any]],
              rate: float, judgments: list[dict[str, Any]] | None = None) -> Summary:
    selected = {p.index for p in prompts}
    finished = {i: j for i, j in records.finished().items() if i in selected}
    latest = {i: j for i, j in records.latest().items() if i in selected}
    latencies = [job.latency_s for job in finished.values()]
    alphas = alpha_by_device(records)
    slowest = max(alphas, key=lambda d: alphas[d]) if alphas else ""
    alpha_max = alphas[slowest] if alphas else None
    queue = time_average_queue(records)
    measured = len(records.jobs) / queue.window_s / queue.devices if queue else None
    preferences = [float(j["preference"]) for j in judgments or [] if j.get("preference") is not None]
    return Summary(
        config=config.name, label=config.label, layers=config.layers, proposers=config.proposers,
        prompts=len(prompts), answered=len(finished),
        failed=sum(1 for i, j in latest.items() if i not in finished),
        degraded=sum(1 for j in finished.values() if j.degraded),
        inferences=len(records.inferences),
        mean_latency_s=sum(latencies) / len(latencies) if latencies else None,
        queue=queue, sampled_queue=sampled_mean(samples, windows(records)), alpha_max=alpha_max, slowest_device=slowest,
        rate=rate, rho=config.rho(rate, alpha_max) if alpha_max is not None else None, measured_rate=measured,
        accuracy=win_rate(preferences) if judgments is not None else None,
        judged=len(preferences), unjudged=len(judgments or []) - len(preferences),
    )


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _accuracy(s: Summary) -> str:
    if s.accuracy is None:
        return "not measured" if s.judged + s.unjudged == 0 else "no verdict"
    return f"{s.accuracy.rate:.2f} ± {s.accuracy.se:.2f} (n={s.accuracy.n})"


def render_markdown(summaries: list[Summary], meta: dict[str, Any]) -> str:
    lines = [
        "# DMoA evaluation report",
        "",
        f"Prompts: {meta['prompt_count']} from `{meta['prompts']}` (sample: {meta['sample']}, seed {meta['seed']}). "
        f"Mesh: {meta['devices']} devices. Arrivals: Poisson at λ = {meta['rate']:g} prompts/s per user "
        f"({meta['devices']}·λ = {meta['devices'] * meta['rate']:.4g} /s for the mesh), each at a device drawn "
        "uniformly.",
        "",
        "| Configuration | Accuracy (win rate %) | Mean latency (s) | Avg queue size | λ (1/s) | ρ |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(f"| {s.label} | {_accuracy(s)} | {_num(s.mean_latency_s)} | "
                     f"{_num(s.queue.mean if s.queue else None)} | {s.rate:g} | {_num(s.rho, 3)} |")
    lines += ["", _accuracy_note(summaries, meta), "", "## Details", "",
              "| Configuration | Answered | Failed | Degraded | Inferences | α_max (s) | Slowest device | Window (s) | "
              "Measured λ (1/s) | Queue, waiting only | Queue, heartbeat samples |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        q = s.queue
        lines.append(
            f"| {s.label} | {s.answered}/{s.prompts} | {s.failed} | {s.degraded} | {s.inferences} | "
            f"{_num(s.alpha_max)} | {s.slowest_device or '-'} | {_num(q.window_s if q else None, 1)} | "
            f"{_num(s.measured_rate, 4)} | {_num(q.waiting_mean if q else None)} | {_num(s.sampled_queue)} |")
    lines += [
        "",
        "Columns: *Accuracy* is the win rate against the reference outputs as judged pairwise (a split verdict "
        "counts its share), ± its standard error. *Mean latency* is from submitting a prompt to receiving its "
        "answer, over the answered prompts. *Avg queue size* is the time-average number of tasks (queued or "
        "running) per device over the run's window, averaged over all devices, reconstructed from every "
        "recorded inference (queue wait + inference time). *ρ* = ((k+1)·M+1)·λ·α_max with α_max the largest "
        "per-device mean inference time in the records; the queues are stable when ρ < 1 (Theorem 1). "
        "*Failed* counts prompts whose latest attempt failed (no answer in time, an error, or admission "
        "control running a lighter configuration): rerun the command to retry them. *Degraded* counts answers "
        "made with fewer than k peers because fewer were live. "
        "*Queue, heartbeat samples* averages the queue depths the devices reported during the run: "
        "a cross-check that also sees work not submitted by this run.",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.",
        "",
    ]
    return "\n".join(lines)


def _accuracy_note(summaries: list[Summary], meta: dict[str, Any]) -> str:
    if any(s.judged + s.unjudged for s in summaries):
        unjudged = sum(s.unjudged for s in summaries)
        note = f"Accuracy judged by `{meta.get('judge_model') or 'the judge'}` at {meta.get('judge_url')}"
        note += f" against `{meta.get('reference')}`."
        if unjudged:
            note += f" {unjudged} comparison(s) gave no usable verdict and are left out."
        return note
    out = Path(meta["out"])
    commands = []
    for s in summaries:
        command = ["alpaca_eval", "--model_outputs", str(out / s.config / "model_outputs.json")]
        if meta.get("reference"):
            command += ["--reference_outputs", str(meta["reference"])]
        commands.append("    " + shlex.join(command))
    return ("Accuracy was not measured (no judge was given). To measure it with AlpacaEval "
            "(needs `pip install alpaca-eval` and its judge's API key), run for each configuration:\n\n"
            + "\n".join(commands)
            + "\n\nor rerun this command with `--judge-url` pointing at any OpenAI-compatible endpoint.")


def render_png(summaries: list[Summary], path: Path) -> None:
    plt = require_matplotlib()
    names = [s.config for s in summaries]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    judged = [s for s in summaries if s.accuracy is not None]
    ax = axes[0]
    if judged:
        ax.bar(names, [s.accuracy.rate if s.accuracy else 0 for s in summaries],
               yerr=[s.accuracy.se if s.accuracy else 0 for s in summaries], color="#4c72b0", capsize=4)
        ax.set_ylim(0, 100)
    else:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_xticks([])
    ax.set_title("Accuracy (win rate %)")
    axes[1].bar(names, [s.mean_latency_s or 0 for s in summaries], color="#dd8452")
    axes[1].set_title("Mean latency (s)")
    axes[2].bar(names, [s.queue.mean if s.queue else 0 for s in summaries], color="#55a868")
    axes[2].set_title("Avg queue size")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def require_matplotlib() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("report.png needs matplotlib: pip install 'dmoa-edge[plot]' (or pass --no-plot)") from None
    return plt


def write_report(out: Path, summaries: list[Summary], meta: dict[str, Any], plot: bool = True) -> None:
    (out / REPORT_MD).write_text(render_markdown(summaries, meta), encoding="utf-8")
    body = {"meta": meta, "configurations": [s.to_json() for s in summaries]}
    (out / REPORT_JSON).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    if plot:
        render_png(summaries, out / REPORT_PNG)
