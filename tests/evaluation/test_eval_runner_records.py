"""How the runner turns an answer (or its absence) into records."""

from __future__ import annotations

from edge_agent.errors import JobError
from edge_agent.evaluation.configs import Config
from edge_agent.evaluation.dataset import Prompt
from edge_agent.evaluation.records import RecordLog, read_records
from edge_agent.evaluation.runner import RunSettings, _submit
from edge_agent.wire.messages import Answer, Inference

PROMPT = Prompt(4, "Name three rivers.", "helpful_base")


class _Client:
    def __init__(self, answer: Answer | None = None, error: Exception | None = None) -> None:
        self.answer, self.error, self.calls = answer, error, []

    def submit(self, prompt, layers, proposers, policy="", job_id=None, timeout_s=0.0, device=None):
        self.calls.append((prompt, layers, proposers, device))
        if self.error:
            raise self.error
        return Answer(**{**self.answer.__dict__, "job_id": job_id})


def _answer(layers: int, proposers: int, count: int) -> Answer:
    inferences = [Inference(layer=1, role="propose", device=f"d{i}", seconds=1.0, prompt_tokens=9,
                            completion_tokens=7, queue_wait_s=0.5) for i in range(count)]
    return Answer(job_id="x", origin="d0", ok=True, answer="Nile, Amazon, Danube.", layers=layers,
                  proposers=proposers, latency_s=2.0, inferences=inferences)


def test_an_answer_becomes_one_job_line_after_its_inference_lines(tmp_path):
    client = _Client(_answer(1, 1, 3))
    log = RecordLog(tmp_path / "records.jsonl")
    assert _submit(client, log, Config(1, 1), PROMPT, "d2", 3, "s", RunSettings(rate=0.1))
    assert client.calls == [("Name three rivers.", 1, 1, "d2")]
    records = read_records(tmp_path / "records.jsonl")
    (job,) = records.jobs
    assert job.ok and job.index == 4 and job.origin == "d2" and job.devices == 3 and job.inferences == 3
    assert job.output == "Nile, Amazon, Danube." and job.origin_latency_s == 2.0
    assert job.latency_s >= 0 and job.answered_at >= job.submitted_at
    assert [i.device for i in records.inferences] == ["d0", "d1", "d2"]
    assert all(i.job_id == job.job_id and i.queue_wait_s == 0.5 for i in records.inferences)
    assert set(records.finished()) == {4}


def test_a_lighter_configuration_chosen_by_admission_control_is_not_this_configurations_answer(tmp_path):
    log = RecordLog(tmp_path / "records.jsonl")
    assert not _submit(_Client(_answer(1, 0, 2)), log, Config(1, 1), PROMPT, "d0", 3, "s", RunSettings(rate=0.1))
    (job,) = read_records(tmp_path / "records.jsonl").jobs
    assert not job.ok and "admission: accept" in job.error and (job.layers, job.proposers) == (1, 0)
    assert read_records(tmp_path / "records.jsonl").finished() == {}  # a rerun retries it


def test_no_answer_is_recorded_as_a_failure_to_retry(tmp_path):
    log = RecordLog(tmp_path / "records.jsonl")
    client = _Client(error=JobError("no answer within 5 s; job j goes on at d1"))
    assert not _submit(client, log, Config(0, 0), PROMPT, "d1", 2, "s", RunSettings(rate=0.1))
    records = read_records(tmp_path / "records.jsonl")
    (job,) = records.jobs
    assert not job.ok and job.inferences == 0 and "no answer" in job.error
    assert records.inferences == [] and records.finished() == {}
