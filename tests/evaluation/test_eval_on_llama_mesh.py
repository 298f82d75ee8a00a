"""The paper's experiment, small: 3 AlpacaEval prompts × 2 configurations on a real
two-device mesh answering with SmolLM2, then resume and judge."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CONFIGS = {"M0k0": (0, 0), "M1k1": (1, 1)}
RATE = 0.3


def run_eval(alpaca_file: Path, broker: str, out: Path, *extra: str):
    args = ["eval", str(alpaca_file), "--configs", ",".join(CONFIGS), "--rate", str(RATE), "--limit", "3",
            "--seed", "1", "--broker", broker, "--out", str(out), "--timeout", "120", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def lines(path: Path) -> list[dict]:
    return [json.loads(raw) for raw in path.read_text().splitlines() if raw.strip()]


def jobs_by_index(path: Path) -> dict[int, dict]:
    return {row["index"]: row for row in lines(path) if row["record"] == "job"}


@pytest.fixture(scope="module")
def first_run(llama_mesh, alpaca_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    result = run_eval(alpaca_file, llama_mesh[0].broker, out)
    return out, result


def test_outputs_records_and_report_agree(first_run, alpaca_file, llama_mesh):
    out, result = first_run
    reference = json.loads(alpaca_file.read_text())[:3]
    report = json.loads((out / "report.json").read_text())
    table = (out / "report.md").read_text()
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    mesh_devices = {d.device for d in llama_mesh}
    for entry in report["configurations"]:
        name = entry["config"]
        layers, proposers = CONFIGS[name]
        outputs = json.loads((out / name / "model_outputs.json").read_text())
        assert [o["instruction"] for o in outputs] == [r["instruction"] for r in reference]
        assert [o["dataset"] for o in outputs] == [r["dataset"] for r in reference]
        assert all(set(o) == {"instruction", "output", "generator", "dataset"} for o in outputs)
        assert all(o["generator"] == f"dmoa-edge-{name}" and o["output"].strip() for o in outputs)

        rows = lines(out / name / "records.jsonl")
        jobs = [r for r in rows if r["record"] == "job"]
        inferences = [r for r in rows if r["record"] == "inference"]
        assert sorted(j["index"] for j in jobs) == [0, 1, 2] and all(j["ok"] for j in jobs)
        assert all(j["origin"] in mesh_devices and j["devices"] == 2 for j in jobs)
        for job in jobs:
            mine = [i for i in inferences if i["job_id"] == job["job_id"]]
            assert len(mine) == job["inferences"] == (proposers + 1) * layers + 1
            assert {i["device"] for i in mine} <= mesh_devices
            assert all(i["seconds"] > 0 and i["completion_tokens"] > 0 and i["queue_wait_s"] >= 0 for i in mine)
            if layers:
                assert len({i["device"] for i in mine if i["layer"] == 1}) == proposers + 1
        # the report's figures, recomputed from records.jsonl alone
        latency = statistics.fmean(j["latency_s"] for j in jobs)
        assert all(j["latency_s"] == pytest.approx(j["answered_at"] - j["submitted_at"], abs=0.002) for j in jobs)
        window = max(j["answered_at"] for j in jobs) - min(j["submitted_at"] for j in jobs)
        queue = sum(i["queue_wait_s"] + i["seconds"] for i in inferences) / (2 * window)
        alphas = {}
        for i in inferences:
            alphas.setdefault(i["device"], []).append(i["seconds"])
        alpha_max = max(statistics.fmean(v) for v in alphas.values())
        assert entry["mean_latency_s"] == pytest.approx(latency)
        assert entry["queue_size"] == pytest.approx(queue, rel=1e-3)
        assert entry["rho"] == pytest.approx(((proposers + 1) * layers + 1) * RATE * alpha_max)
        assert entry["answered"] == 3 and entry["failed"] == 0 and entry["accuracy"] is None
        assert (f"| M={layers}, k={proposers} | not measured | {entry['mean_latency_s']:.2f} | "
                f"{entry['queue_size']:.2f} | {RATE:g} | {entry['rho']:.3f} |") in table
    assert "Accuracy was not measured" in table and "alpaca_eval --model_outputs" in table
    assert "3/3 done" in result.stderr  # the progress bar


def test_resume_reruns_only_missing_prompts(first_run, alpaca_file, llama_mesh, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(first_run[0], out)
    before = {name: jobs_by_index(out / name / "records.jsonl") for name in CONFIGS}
    # M0k0 loses every line of prompt 1; M1k1 loses the job line of prompt 2 (its
    # inference lines stay: a record cut short counts as unfinished).
    path = out / "M0k0" / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines(path) if r["index"] != 1))
    path = out / "M1k1" / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines(path)
                            if not (r["record"] == "job" and r["index"] == 2)))
    result = run_eval(alpaca_file, llama_mesh[0].broker, out)
    rerun = {"M0k0": 1, "M1k1": 2}
    for name, index in rerun.items():
        after = jobs_by_index(out / name / "records.jsonl")
        assert sorted(after) == [0, 1, 2]
        for i in (0, 1, 2):
            if i == index:
                assert after[i]["job_id"] != before[name][i]["job_id"]
                assert after[i]["session"] != before[name][i]["session"] and after[i]["ok"]
            else:
                assert after[i] == before[name][i]  # not submitted again
        outputs = json.loads((out / name / "model_outputs.json").read_text())
        assert len(outputs) == 3
    assert "3/3 done" in result.stderr


def test_judge_through_an_openai_compatible_server(first_run, alpaca_file, judge_server, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(first_run[0], out)
    records_before = (out / "M1k1" / "records.jsonl").read_bytes()
    # Every prompt is answered already: no mesh is needed, only the judge (of one configuration).
    result = CliRunner().invoke(cli, [
        "eval", str(alpaca_file), "--configs", "M1k1", "--rate", str(RATE), "--limit", "3", "--seed", "1",
        "--broker", "127.0.0.1:9", "--out", str(out), "--judge-url", judge_server, "--judge-max-chars", "400"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((out / "report.json").read_text())
    table = (out / "report.md").read_text()
    assert [entry["config"] for entry in report["configurations"]] == ["M1k1"]
    for entry in report["configurations"]:
        name = entry["config"]
        assert (out / name / "records.jsonl").read_bytes() == records_before
        judgments = lines(out / name / "judgments.jsonl")
        assert sorted(j["index"] for j in judgments) == [0, 1, 2]
        assert all(j["method"] in ("logprobs", "text", "unparsed") and j["error"] == "" for j in judgments)
        preferences = [j["preference"] for j in judgments if j["preference"] is not None]
        assert entry["judged"] == len(preferences) and entry["unjudged"] == 3 - len(preferences)
        if preferences:
            assert entry["accuracy"]["rate"] == pytest.approx(100 * statistics.fmean(preferences))
            assert entry["accuracy"]["n"] == len(preferences)
            assert f"{entry['accuracy']['rate']:.2f} ± {entry['accuracy']['se']:.2f}" in table
    assert "Accuracy judged by" in table and judge_server in table
