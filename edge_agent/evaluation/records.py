"""What a run writes per configuration, and reading it back.

DIR/<config>/records.jsonl holds one line per inference and, after them, one
line per prompt (`"record": "job"`), appended together in a single write once
the prompt's answer is in. A prompt is finished when its latest job line says
ok and all the inference lines it announces are present; anything else (a
missing, torn or failed record) makes a resumed run ask for it again.

DIR/<config>/model_outputs.json is regenerated from the records in AlpacaEval
format (instruction, output, generator, dataset).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_agent.evaluation.dataset import Prompt

RECORDS = "records.jsonl"
OUTPUTS = "model_outputs.json"
SAMPLES = "queue_samples.jsonl"
JUDGMENTS = "judgments.jsonl"


@dataclass(frozen=True)
class InferenceRecord:
    config: str
    index: int
    job_id: str
    session: str
    layer: int
    role: str
    device: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    queue_wait_s: float
    ok: bool = True


@dataclass(frozen=True)
class JobRecord:
    config: str
    index: int
    job_id: str
    session: str
    origin: str
    devices: int
    """How many devices the mesh had: idle devices count in the queue average."""
    ok: bool
    submitted_at: float
    answered_at: float
    latency_s: float
    """End to end, as the submitting user sees it (answered_at - submitted_at)."""
    origin_latency_s: float = 0.0
    """As the origin measured it, from accepting the prompt to the answer."""
    layers: int = 0
    proposers: int = 0
    degraded: bool = False
    notes: list[str] = field(default_factory=list)
    error: str = ""
    inferences: int = 0
    output: str = ""


def _line(kind: str, record: InferenceRecord | JobRecord) -> str:
    return json.dumps({"record": kind, **asdict(record)}, ensure_ascii=False)


def _build(cls: type, body: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in body.items() if k in names})


class RecordLog:
    """Appends to one records.jsonl; safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, job: JobRecord, inferences: list[InferenceRecord]) -> None:
        text = "".join(_line("inference", i) + "\n" for i in inferences) + _line("job", job) + "\n"
        with self._lock, self.path.open("ab+") as fh:
            end = fh.seek(0, os.SEEK_END)
            if end > 0:
                fh.seek(end - 1)
                if fh.read(1) != b"\n":  # a line torn by a crash: start after it
                    text = "\n" + text
            fh.write(text.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class ConfigRecords:
    jobs: list[JobRecord] = field(default_factory=list)
    inferences: list[InferenceRecord] = field(default_factory=list)
    unreadable: int = 0

    def complete(self, job: JobRecord) -> bool:
        if not job.ok:
            return False
        counts: dict[str, int] = {}
        for i in self.inferences:
            counts[i.job_id] = counts.get(i.job_id, 0) + 1
        return counts.get(job.job_id, 0) == job.inferences

    def latest(self) -> dict[int, JobRecord]:
        """The last attempt at each prompt (the one whose answer came last)."""
        found: dict[int, JobRecord] = {}
        for job in self.jobs:
            if job.index not in found or job.answered_at >= found[job.index].answered_at:
                found[job.index] = job
        return found

    def finished(self) -> dict[int, JobRecord]:
        """Prompts that need no rerun: the latest complete, successful job of each."""
        counts: dict[str, int] = {}
        for i in self.inferences:
            counts[i.job_id] = counts.get(i.job_id, 0) + 1
        found: dict[int, JobRecord] = {}
        for job in self.jobs:
            complete = job.ok and counts.get(job.job_id, 0) == job.inferences
            if complete and (job.index not in found or job.answered_at >= found[job.index].answered_at):
                found[job.index] = job
        return found

    def inferences_of(self, job_id: str) -> list[InferenceRecord]:
        return [i for i in self.inferences if i.job_id == job_id]


def read_records(path: Path) -> ConfigRecords:
    """Everything readable in a records.jsonl (an absent file is an empty one)."""
    records = ConfigRecords()
    if not path.is_file():
        return records
    with path.open(encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                body = json.loads(raw)
                kind = body.pop("record")
                if kind == "inference":
                    records.inferences.append(_build(InferenceRecord, body))
                elif kind == "job":
                    records.jobs.append(_build(JobRecord, body))
                else:
                    records.unreadable += 1
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                records.unreadable += 1  # e.g. a line torn by a crash mid-write
    return records


def model_outputs(prompts: list[Prompt], finished: dict[int, JobRecord], generator: str) -> list[dict[str, str]]:
    """AlpacaEval's model_outputs format, for the prompts that have an answer."""
    return [{"instruction": p.instruction, "output": finished[p.index].output, "generator": generator,
             "dataset": p.dataset} for p in prompts if p.index in finished]


def write_json(path: Path, body: Any) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(body, dict):
            rows.append(body)
    return rows
