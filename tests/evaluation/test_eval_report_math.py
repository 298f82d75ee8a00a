"""The report's figures from records: latency, Little's-law queue size, α_max, ρ."""

import json

import pytest

from edge_agent.errors import ConfigError
from edge_agent.evaluation.configs import Config, parse, parse_list
from edge_agent.evaluation.dataset import Prompt
from edge_agent.evaluation.queues import sampled_mean, time_average_queue
from edge_agent.evaluation.records import InferenceRecord, JobRecord, RecordLog, read_records
from edge_agent.evaluation.report import render_markdown, summarize, write_report

PROMPTS = [Prompt(i, f"instruction {i}", "set") for i in range(3)]


def _job(index, session, submitted, answered, inferences, ok=True, devices=2):
    return JobRecord(config="M1k1", index=index, job_id=f"j{index}{session}", session=session, origin="d1",
                     devices=devices, ok=ok, submitted_at=submitted, answered_at=answered,
                     latency_s=answered - submitted, layers=1, proposers=1, inferences=inferences,
                     output=f"answer {index}" if ok else "", error="" if ok else "boom")


def _inf(job, device, wait, seconds):
    return InferenceRecord(config="M1k1", index=job.index, job_id=job.job_id, session=job.session, layer=1,
                           role="propose", device=device, seconds=seconds, prompt_tokens=10, completion_tokens=5,
                           queue_wait_s=wait)


@pytest.fixture
def records(tmp_path):
    log = RecordLog(tmp_path / "records.jsonl")
    j0 = _job(0, "s1", 100.0, 110.0, 2)
    j1 = _job(1, "s1", 102.0, 120.0, 1)
    log.append(j0, [_inf(j0, "d1", 0.0, 4.0), _inf(j0, "d2", 1.0, 5.0)])
    log.append(j1, [_inf(j1, "d1", 2.0, 4.0)])
    j2 = _job(2, "s2", 500.0, 505.0, 1)  # a resumed session
    log.append(j2, [_inf(j2, "d2", 0.0, 5.0)])
    return read_records(tmp_path / "records.jsonl")


def test_time_average_queue_is_littles_law_over_the_sessions_windows(records):
    stats = time_average_queue(records)
    assert stats.window_s == pytest.approx(20.0 + 5.0)  # [100, 120] and [500, 505]
    assert stats.devices == 2
    # d1 holds tasks for 4 + (2 + 4) = 10 s, d2 for (1 + 5) + 5 = 11 s
    assert stats.per_device == pytest.approx({"d1": 10 / 25, "d2": 11 / 25})
    assert stats.mean == pytest.approx(21 / (2 * 25))
    assert stats.waiting_mean == pytest.approx(3 / (2 * 25))


def test_idle_devices_count_as_empty_queues(tmp_path):
    log = RecordLog(tmp_path / "r.jsonl")
    job = _job(0, "s", 0.0, 10.0, 1, devices=4)
    log.append(job, [_inf(job, "d1", 0.0, 8.0)])
    assert time_average_queue(read_records(tmp_path / "r.jsonl")).mean == pytest.approx(8 / (4 * 10))


def test_summary_latency_alpha_and_rho(records):
    config = Config(1, 1)
    summary = summarize(config, PROMPTS, records, [], rate=0.1)
    assert summary.mean_latency_s == pytest.approx((10 + 18 + 5) / 3)
    assert summary.alpha_max == pytest.approx(5.0) and summary.slowest_device == "d2"
    assert summary.rho == pytest.approx(((1 + 1) * 1 + 1) * 0.1 * 5.0)
    assert (summary.answered, summary.failed, summary.inferences) == (3, 0, 4)
    assert summary.accuracy is None
    assert summary.measured_rate == pytest.approx(3 / 25 / 2)


def test_the_markdown_table_has_the_papers_columns(records, tmp_path):
    summary = summarize(Config(1, 1), PROMPTS, records, [], rate=0.1)
    meta = {"prompts": "p.json", "prompt_count": 3, "sample": "first", "seed": 0, "rate": 0.1, "devices": 2,
            "out": str(tmp_path), "reference": "ref.json", "judge_url": None, "judge_model": None}
    text = render_markdown([summary], meta)
    assert "| Configuration | Accuracy (win rate %) | Mean latency (s) | Avg queue size | λ (1/s) | ρ |" in text
    assert "| M=1, k=1 | not measured | 11.00 | 0.42 | 0.1 | 1.500 |" in text
    assert f"alpaca_eval --model_outputs {tmp_path}/M1k1/model_outputs.json --reference_outputs ref.json" in text


def test_judged_accuracy_appears_with_its_standard_error(records, tmp_path):
    judgments = [{"index": 0, "preference": 1.0}, {"index": 1, "preference": 0.0},
                 {"index": 2, "preference": None, "method": "unparsed"}]
    summary = summarize(Config(1, 1), PROMPTS, records, [], rate=0.1, judgments=judgments)
    assert summary.accuracy.rate == pytest.approx(50.0) and summary.accuracy.se == pytest.approx(50.0)
    assert (summary.judged, summary.unjudged) == (2, 1)
    meta = {"prompts": "p.json", "prompt_count": 3, "sample": "first", "seed": 0, "rate": 0.1, "devices": 2,
            "out": str(tmp_path), "reference": "ref.json", "judge_url": "http://judge/v1", "judge_model": "m"}
    text = render_markdown([summary], meta)
    assert "| M=1, k=1 | 50.00 ± 50.00 (n=2) |" in text
    assert "1 comparison(s) gave no usable verdict" in text


def test_report_files_are_written(records, tmp_path):
    summary = summarize(Config(1, 1), PROMPTS, records, [], rate=0.1)
    meta = {"prompts": "p.json", "prompt_count": 3, "sample": "first", "seed": 0, "rate": 0.1, "devices": 2,
            "out": str(tmp_path), "reference": None, "judge_url": None, "judge_model": None}
    write_report(tmp_path, [summary], meta, plot=True)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    body = json.loads((tmp_path / "report.json").read_text())
    assert body["configurations"][0]["queue_size"] == pytest.approx(0.42)
    assert "alpaca_eval --model_outputs" in (tmp_path / "report.md").read_text()


def test_resume_bookkeeping(tmp_path):
    path = tmp_path / "records.jsonl"
    log = RecordLog(path)
    done, partial, failed = _job(0, "s", 0, 5, 1), _job(1, "s", 0, 6, 2), _job(2, "s", 0, 7, 0, ok=False)
    log.append(done, [_inf(done, "d1", 0, 1)])
    log.append(partial, [_inf(partial, "d1", 0, 1)])  # announces 2 inferences, has 1
    log.append(failed, [])
    with path.open("a") as fh:
        fh.write('{"record": "job", "config": "M1k1", "ind')  # torn by a crash
    records = read_records(path)
    assert records.unreadable == 1
    assert set(records.finished()) == {0}
    retry = _job(2, "t", 10, 12, 1)
    log.append(retry, [_inf(retry, "d2", 0, 1)])
    records = read_records(path)
    assert set(records.finished()) == {0, 2}
    assert records.latest()[2].job_id == retry.job_id


def test_sampled_queue_keeps_samples_inside_the_windows():
    samples = [{"session": "s", "t": 1.0, "queues": {"a": 4, "b": 0}},
               {"session": "s", "t": 5.0, "queues": {"a": 1, "b": 1}},
               {"session": "s", "t": 50.0, "queues": {"a": 9, "b": 9}}]
    assert sampled_mean(samples) == pytest.approx((2 + 1 + 9) / 3)
    assert sampled_mean(samples, {"s": (0.0, 10.0)}) == pytest.approx(1.5)
    assert sampled_mean([]) is None


def test_configurations_parse_like_the_papers_tables():
    assert parse("M2k3") == Config(2, 3) and parse("m0k0").name == "M0k0"
    assert Config(2, 3).inferences == 9 and Config(0, 0).inferences == 1
    assert [c.name for c in parse_list("M0k0, M1k1,M1k1,")] == ["M0k0", "M1k1"]
    for bad in ("M1", "k2", "M0k2", "M1k2x", ""):
        with pytest.raises(ConfigError):
            parse_list(bad) if bad == "" else parse(bad)
