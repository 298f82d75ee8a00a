"""Running one configuration on a running mesh.

Prompts arrive as a Poisson process (rate n·λ for n devices) at devices drawn
uniformly; each is submitted from its own thread the moment it arrives, so
prompts overlap and queue on the devices as in the paper. Every answer is
appended to the configuration's records as soon as it is in, so an interrupted
run loses only the prompts in flight, and a rerun submits only the prompts
without a finished record.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from edge_agent.client.status import read_statuses
from edge_agent.client.submit import SubmitClient
from edge_agent.errors import ConfigError, EdgeAgentError, MeshError
from edge_agent.evaluation import arrivals
from edge_agent.evaluation.configs import Config
from edge_agent.evaluation.dataset import Prompt
from edge_agent.evaluation.progress import ProgressBar
from edge_agent.evaluation.queues import QueueSampler
from edge_agent.evaluation.records import (
    OUTPUTS,
    RECORDS,
    SAMPLES,
    ConfigRecords,
    InferenceRecord,
    JobRecord,
    RecordLog,
    append_jsonl,
    model_outputs,
    read_records,
    write_json,
)
from edge_agent.wire.messages import Answer
from edge_agent.wire.mqtt import BrokerAddress, Credentials


@dataclass(frozen=True)
class RunSettings:
    rate: float
    """λ, prompts per second per user (device)."""
    seed: int = 0
    timeout_s: float = 1800.0
    policy: str = ""
    generator: str = "dmoa-edge"
    drain_timeout_s: float = 300.0
    sample_interval_s: float = 0.5


@dataclass(frozen=True)
class Outcome:
    config: Config
    submitted: int
    ok: int
    failed: int


def generator_name(settings: RunSettings, config: Config) -> str:
    return f"{settings.generator}-{config.name}"


class MeshSession:
    """The connection a run uses, opened only when some prompt still has to run."""

    def __init__(self, broker: BrokerAddress, credentials: Credentials = Credentials()) -> None:
        self.broker = broker
        self.credentials = credentials
        self._client: SubmitClient | None = None
        self.devices: list[str] = []

    @property
    def client(self) -> SubmitClient:
        return self.open()

    def open(self) -> SubmitClient:
        """Connect (once) and read which devices are online."""
        if self._client is None:
            statuses = read_statuses(self.broker.host, self.broker.port, wait_s=1.5, credentials=self.credentials)
            self.devices = sorted(s["device"] for s in statuses if s.get("online"))
            if not self.devices:
                raise MeshError(f"no device is online on the mesh of broker {self.broker}")
            self._client = SubmitClient(self.broker, credentials=self.credentials)
        return self._client

    def queue_of(self, device: str) -> int | None:
        status = self.client.status_of(device, wait_s=0.01)
        return None if status is None else status.queue

    def drain(self, timeout_s: float) -> bool:
        """Wait until no device reports queued work (left over from an earlier run)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all((self.queue_of(d) or 0) == 0 for d in self.devices):
                return True
            time.sleep(0.5)
        return False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def new_session_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def write_outputs(directory: Path, prompts: list[Prompt], settings: RunSettings, config: Config) -> int:
    finished = read_records(directory / RECORDS).finished()
    rows = model_outputs(prompts, finished, generator_name(settings, config))
    write_json(directory / OUTPUTS, rows)
    return len(rows)


def pending_prompts(out: Path, config: Config, prompts: list[Prompt]) -> list[Prompt]:
    finished = read_records(out / config.name / RECORDS).finished()
    return [p for p in prompts if p.index not in finished]


def check_mesh(session: MeshSession, configs: list[Config]) -> None:
    """Refuse, before any work, configurations with more proposers than the mesh has devices."""
    session.open()
    devices = session.devices
    too_big = [c.name for c in configs if c.proposers > len(devices) - 1]
    if too_big:
        raise ConfigError(f"{', '.join(too_big)} need(s) more devices than the {len(devices)} online "
                          f"({', '.join(devices)}): k can be at most n - 1 = {len(devices) - 1}")


def run_config(session: MeshSession, config: Config, prompts: list[Prompt], out: Path,
               settings: RunSettings, progress: bool = True) -> Outcome:
    """Run the prompts of one configuration that have no finished record yet."""
    directory = out / config.name
    finished = read_records(directory / RECORDS).finished()
    pending = {p.index: p for p in prompts if p.index not in finished}
    if not pending:
        write_outputs(directory, prompts, settings, config)
        return Outcome(config, 0, 0, 0)
    check_mesh(session, [config])
    client = session.client
    devices = session.devices
    schedule = arrivals.schedule([p.index for p in prompts], len(devices), settings.rate, settings.seed)
    plan = [a for a in schedule if a.index in pending]
    times = arrivals.offsets(plan)
    if not session.drain(settings.drain_timeout_s):
        raise MeshError(f"the mesh still has queued work after {settings.drain_timeout_s:.0f} s; "
                        "wait for it to finish and run again")
    sid = new_session_id()
    log = RecordLog(directory / RECORDS)
    bar = ProgressBar(config.name, total=len(prompts), done=len(finished)) if progress else None
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def one(prompt: Prompt, device: str) -> None:
        ok = _submit(client, log, config, prompt, device, len(devices), sid, settings)
        with lock:
            counts["ok" if ok else "failed"] += 1
        if bar:
            bar.finished(ok)

    sampler = QueueSampler(session.queue_of, devices, sid, settings.sample_interval_s)
    sampler.start()
    if bar:
        bar.start()
    threads: list[threading.Thread] = []
    start = time.monotonic()
    try:
        for arrival, at in zip(plan, times, strict=True):
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            thread = threading.Thread(target=one, args=(pending[arrival.index], devices[arrival.slot]),
                                      name=f"eval-{arrival.index}", daemon=True)
            thread.start()
            threads.append(thread)
            if bar:
                bar.submitted()
        deadline = time.monotonic() + settings.timeout_s + 60
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        append_jsonl(directory / SAMPLES, sampler.stop())
        if bar:
            bar.close()
        write_outputs(directory, prompts, settings, config)
    if progress:
        _explain_failures(read_records(directory / RECORDS), sid)
    return Outcome(config, len(plan), counts["ok"], counts["failed"])


def _explain_failures(records: ConfigRecords, session: str) -> None:
    """One line per distinct reason prompts of this session failed."""
    reasons: dict[str, int] = {}
    for job in records.jobs:
        if job.session == session and not job.ok:
            reasons[job.error] = reasons.get(job.error, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        sys.stderr.write(f"  {count} prompt(s) failed: {reason or 'no reason given'}\n")
    if reasons:
        sys.stderr.write("  rerun the same command to retry them\n")


def _submit(client: SubmitClient, log: RecordLog, config: Config, prompt: Prompt, device: str, devices: int,
            session: str, settings: RunSettings) -> bool:
    job_id = f"eval-{config.name.lower()}-{prompt.index}-{uuid.uuid4().hex[:8]}"
    submitted = time.time()
    answer: Answer | None = None
    error = ""
    try:
        answer = client.submit(prompt.instruction, config.layers, config.proposers, policy=settings.policy,
                               job_id=job_id, timeout_s=settings.timeout_s, device=device)
    except EdgeAgentError as err:
        error = str(err)
    answered = time.time()
    inferences = [] if answer is None else [
        InferenceRecord(config=config.name, index=prompt.index, job_id=job_id, session=session, layer=i.layer,
                        role=i.role, device=i.device, seconds=i.seconds, prompt_tokens=i.prompt_tokens,
                        completion_tokens=i.completion_tokens, queue_wait_s=i.queue_wait_s, ok=i.ok)
        for i in answer.inferences
    ]
    ok = answer is not None and answer.ok
    if answer is not None and answer.ok and (answer.layers, answer.proposers) != (config.layers, config.proposers):
        # Admission control ran something lighter: not this configuration's answer.
        ok = False
        error = (f"admission control ran M={answer.layers},k={answer.proposers} instead of {config.label}; "
                 f"set `admission: accept` on every device for the paper's experiment")
    job = JobRecord(
        config=config.name, index=prompt.index, job_id=job_id, session=session, origin=device, devices=devices,
        ok=ok, submitted_at=round(submitted, 3), answered_at=round(answered, 3),
        latency_s=round(answered - submitted, 3),
        origin_latency_s=answer.latency_s if answer else 0.0,
        layers=answer.layers if answer else config.layers, proposers=answer.proposers if answer else config.proposers,
        degraded=bool(answer and answer.degraded), notes=list(answer.notes) if answer else [],
        error=error or (answer.error if answer else ""), inferences=len(inferences),
        output=answer.answer if answer else "",
    )
    log.append(job, inferences)
    return ok
