"""`edge-agent eval`: the paper's experiment on a running mesh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edge_agent.commands.common import broker_options, connection
from edge_agent.errors import ConfigError
from edge_agent.evaluation import dataset
from edge_agent.evaluation.configs import DEFAULT_CONFIGS, Config, parse_list
from edge_agent.evaluation.judge import JudgeClient, judge_outputs
from edge_agent.evaluation.records import JUDGMENTS, RECORDS, SAMPLES, append_jsonl, read_jsonl, read_records
from edge_agent.evaluation.report import REPORT_MD, Summary, require_matplotlib, summarize, write_report
from edge_agent.evaluation.runner import MeshSession, RunSettings, check_mesh, pending_prompts, run_config

MANIFEST = "run.json"
FIXED = ("prompts_sha256", "rate", "seed", "sample", "generator")


def check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """A directory holds one experiment: resuming it with other settings would mix two."""
    path = out / MANIFEST
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read {path}: {err}") from None
        changed = [k for k in FIXED if k in before and before[k] != manifest[k]]
        if changed:
            detail = ", ".join(f"{k} was {before[k]!r}" for k in changed)
            raise ConfigError(f"{out} holds a run with other settings ({detail}); use another --out "
                              "or the same settings to resume it")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def references_for(prompts: list[dataset.Prompt], reference: str | None) -> dict[str, str]:
    """Reference outputs by instruction: from --reference, else from the prompts file's own outputs."""
    source = dataset.load_prompts(Path(reference)) if reference else prompts
    found = {p.instruction: p.reference for p in source if p.reference is not None}
    if not found:
        raise ConfigError("the judge needs reference outputs: pass --reference FILE "
                          "(AlpacaEval format with an 'output' per instruction)")
    return found


def judge_config(client: JudgeClient, config: Config, prompts: list[dataset.Prompt], out: Path,
                 references: dict[str, str], seed: int) -> list[dict[str, Any]]:
    finished = read_records(out / config.name / RECORDS).finished()
    items = [(p.index, p.instruction, finished[p.index].output, references[p.instruction])
             for p in prompts if p.index in finished and p.instruction in references]
    path = out / config.name / JUDGMENTS
    current, fresh = judge_outputs(client, config.name, items, seed, read_jsonl(path))
    append_jsonl(path, fresh)
    return current


@click.command(name="eval")
@click.argument("prompts_file", metavar="PROMPTS.json", required=False, type=click.Path(dir_okay=False))
@click.option("--hf", is_flag=True, help="Load tatsu-lab/alpaca_eval with the datasets library (needs the hub).")
@click.option("--configs", default=DEFAULT_CONFIGS, show_default=True, help="Comma-separated M<layers>k<peers>.")
@click.option("--rate", type=float, required=True, help="λ: prompts per second per user (n·λ for the mesh).")
@click.option("--limit", type=click.IntRange(1), default=10, show_default=True,
              help="How many prompts (the paper used 10).")
@click.option("--sample", type=click.Choice(["first", "random"]), default="first", show_default=True,
              help="The first N prompts, or N drawn with --seed.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the sample, arrivals and origins.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for outputs and report.")
@click.option("--timeout", "timeout_s", type=float, default=1800.0, show_default=True,
              help="Seconds to wait for one prompt's answer.")
@click.option("--policy", type=click.Choice(["", "uniform", "least-loaded"]), default="",
              help="Peer choice (default: each device's setting; the paper's is uniform).")
@click.option("--generator", default="dmoa-edge", show_default=True, help="Prefix of the generator name.")
@click.option("--judge-url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
@click.option("--judge-model", default="", help="Model name for the judge (default: the endpoint's first).")
@click.option("--judge-key", envvar="EDGE_AGENT_JUDGE_KEY", default="", help="API key for the judge.")
@click.option("--judge-max-chars", type=click.IntRange(200), default=4000, show_default=True,
              help="Each answer shown to the judge is cut to this many characters.")
@click.option("--reference", default=None, type=click.Path(dir_okay=False),
              help="Reference outputs (AlpacaEval format); default: PROMPTS.json's own outputs.")
@click.option("--no-plot", is_flag=True, help="Skip report.png.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@broker_options
def evaluate(prompts_file: str | None, hf: bool, configs: str, rate: float, limit: int, sample: str, seed: int,
             out: str, timeout_s: float, policy: str, generator: str, judge_url: str | None, judge_model: str,
             judge_key: str, judge_max_chars: int, reference: str | None, no_plot: bool, quiet: bool,
             **kwargs: Any) -> None:
    """Run each configuration on the running mesh with Poisson arrivals, then report.

    Writes OUT/<config>/model_outputs.json (AlpacaEval format), OUT/<config>/records.jsonl
    (every inference), OUT/report.md and OUT/report.png. Rerun the same command to
    resume: prompts with a finished record are not submitted again.
    """
    broker, credentials = connection(kwargs)
    if hf == bool(prompts_file):
        raise ConfigError("give either PROMPTS.json or --hf")
    if not rate > 0:
        raise ConfigError("--rate must be a positive number of prompts per second per user")
    chosen = parse_list(configs)
    every = dataset.load_hf() if hf else dataset.load_prompts(Path(prompts_file or ""))
    prompts = dataset.select(every, limit, seed, sample)
    if not no_plot:
        require_matplotlib()
    judge: JudgeClient | None = None
    references: dict[str, str] = {}
    if judge_url:
        references = references_for(every, reference)
        judge = JudgeClient(judge_url, judge_model, judge_key, max_chars=judge_max_chars)
        judge.check()
    out_dir = Path(out)
    source = "hf:" + dataset.HF_DATASET[0] if hf else str(Path(prompts_file or "").resolve())
    check_manifest(out_dir, {"prompts": source, "prompts_sha256": dataset.digest(every), "rate": rate,
                             "seed": seed, "sample": sample, "generator": generator})
    settings = RunSettings(rate=rate, seed=seed, timeout_s=timeout_s, policy=policy, generator=generator)
    session = MeshSession(broker, credentials)
    try:
        to_run = [c for c in chosen if pending_prompts(out_dir, c, prompts)]
        if to_run:
            check_mesh(session, to_run)
        for config in chosen:
            outcome = run_config(session, config, prompts, out_dir, settings, progress=not quiet)
            if not quiet and outcome.submitted == 0:
                click.echo(f"{config.name}: all {len(prompts)} prompts already answered", err=True)
    except KeyboardInterrupt:
        click.echo(f"stopped; rerun the same command to resume (records in {out_dir})", err=True)
        raise
    finally:
        session.close()
    summaries: list[Summary] = []
    for config in chosen:
        judgments = None
        if judge is not None:
            if not quiet:
                click.echo(f"{config.name}: judging against the reference outputs", err=True)
            judgments = judge_config(judge, config, prompts, out_dir, references, seed)
        directory = out_dir / config.name
        summaries.append(summarize(config, prompts, read_records(directory / RECORDS),
                                   read_jsonl(directory / SAMPLES), rate, judgments))
    devices = len(session.devices) or max((j.devices for c in chosen
                                           for j in read_records(out_dir / c.name / RECORDS).jobs), default=0)
    own_outputs = not hf and any(p.reference is not None for p in every)
    meta = {"prompts": source, "prompt_count": len(prompts), "sample": sample, "seed": seed, "rate": rate,
            "devices": devices, "out": str(out_dir),
            "reference": str(Path(reference).resolve()) if reference else (source if own_outputs else None),
            "judge_url": judge_url, "judge_model": judge.model if judge else None,
            "configs": [c.name for c in chosen]}
    write_report(out_dir, summaries, meta, plot=not no_plot)
    click.echo((out_dir / REPORT_MD).read_text().split("\n\n## Details")[0])


eval = evaluate  # the name the CLI registers
