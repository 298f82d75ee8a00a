"""Submitting a prompt to a device and following it to its answer (used by
`edge-agent submit`, the TUI and the evaluation runner)."""

from __future__ import annotations

import hmac
import queue
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge_agent.client.status import observer_id
from edge_agent.errors import JobError, MeshError, ProtocolError
from edge_agent.wire import topics
from edge_agent.wire.messages import (
    MAX_MESSAGE_BYTES,
    Answer,
    Chunk,
    Progress,
    Status,
    Submit,
    Turn,
    decode,
    new_secret,
)
from edge_agent.wire.mqtt import BrokerAddress, Credentials, MeshClient
from edge_agent.wire.streaming import Assembler

# A submit is published again until its origin says it holds the job ("accepted"): a broker's
# PUBACK means it has the message in memory, not that the origin's agent committed it, and a
# board that loses power in between loses it. The origin runs a job id once.
RESUBMIT_FIRST_S = 2.0
RESUBMIT_MAX_S = 16.0

ProgressHook = Callable[[Progress], None]
TokenHook = Callable[[str], None]


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


class SubmitClient:
    """One connection to a board's broker, able to submit several jobs."""

    def __init__(self, broker: BrokerAddress, device: str | None = None,
                 credentials: Credentials = Credentials(), connect_timeout_s: float = 5.0) -> None:
        self.broker = broker
        self._answers: dict[str, tuple[queue.Queue[Answer], str]] = {}
        self._hooks: dict[str, ProgressHook] = {}
        self._accepted: dict[str, threading.Event] = {}
        self._streams: dict[str, tuple[str, Assembler, TokenHook]] = {}
        self.watch: ProgressHook | None = None
        """Called with every job event heard on the mesh (on paho's thread)."""
        self._statuses: dict[str, Status] = {}
        self._identity = threading.Event()
        self._identity_value = ""
        self._lock = threading.Lock()
        self._client = MeshClient(observer_id("submit"), broker, credentials=credentials)
        self._client.route(topics.LOCAL_IDENTITY, self._on_identity)
        self._client.route(topics.ALL_STATUS, self._on_status)
        self._client.route(topics.ALL_PROGRESS, self._on_progress, qos=0)
        self._client.connect(timeout_s=connect_timeout_s)
        # Answers come back to the device whose broker we are on (its identity), so a
        # prompt may be sent to any device of the mesh from here.
        self.local = self._discover() if device is None else (self._identity_now() or device)
        self.device = device or self.local
        self._client.route(topics.answers(self.local), self._on_answer)
        self._client.route(topics.streams(self.local), self._on_chunk, qos=0)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SubmitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _discover(self, timeout_s: float = 3.0) -> str:
        if not self._identity.wait(timeout_s):
            raise MeshError(f"no agent announces itself on {self.broker}; pass --device ID")
        return self._identity_value

    def _identity_now(self, wait_s: float = 1.0) -> str:
        return self._identity_value if self._identity.wait(wait_s) else ""

    @property
    def connected(self) -> bool:
        return self._client.connected

    def statuses(self) -> dict[str, Status]:
        """The latest status of every device heard of, by device id."""
        with self._lock:
            return dict(self._statuses)

    def status_of(self, device: str, wait_s: float = 2.0) -> Status | None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with self._lock:
                if device in self._statuses:
                    return self._statuses[device]
            time.sleep(0.05)
        return None

    def submit(self, prompt: str, layers: int | None = None, proposers: int | None = None, policy: str = "",
               job_id: str | None = None, timeout_s: float = 300.0,
               on_progress: ProgressHook | None = None, device: str | None = None,
               messages: list[Turn] | None = None, max_tokens: int = 0, temperature: float | None = None,
               on_token: TokenHook | None = None) -> Answer:
        """Submit at device (default: this client's) and wait for the answer.

        messages: a conversation ending with the user's turn (prompt is then its last
        content). on_token gets the final answer's text as it is generated, all of it
        exactly once, the last piece before this returns. Raises MeshError or JobError
        with a one-line reason.
        """
        target = device or self.device
        status = self.status_of(target)
        if status is None:
            raise MeshError(f"device {target} has never reported on {self.broker}")
        if not status.online:
            raise MeshError(f"device {target} is offline")
        # Unset M or k: the device's own defaults, as its status announces them.
        layers = status.layers if layers is None else layers
        proposers = status.proposers if proposers is None else proposers
        job_id = job_id or new_job_id()
        inbox: queue.Queue[Answer] = queue.Queue()
        secret = new_secret()
        accepted = threading.Event()
        with self._lock:
            self._answers[job_id] = (inbox, secret)
            self._accepted[job_id] = accepted
            if on_progress:
                self._hooks[job_id] = on_progress
            if on_token:
                self._streams[job_id] = (secret, Assembler(), on_token)
        try:
            message = Submit(job_id=job_id, prompt=prompt, layers=layers, proposers=proposers,
                             policy=policy, reply_to=self.local, created_at=time.time(), secret=secret,
                             messages=messages or [], max_tokens=max_tokens, temperature=temperature,
                             stream=on_token is not None)
            payload = message.encode()
            if len(payload) > MAX_MESSAGE_BYTES:  # the agent would drop it unanswered
                raise ProtocolError(f"the prompt makes a message of {len(payload)} bytes, over the "
                                    f"{MAX_MESSAGE_BYTES}-byte limit")
            info = self._client.publish(topics.submit(target), payload, qos=1)
            try:
                info.wait_for_publish(timeout=min(timeout_s, 30.0))
            except (ValueError, RuntimeError) as err:
                raise MeshError(f"cannot hand the prompt to {self.broker}: {err}") from None
            if not info.is_published():
                raise MeshError(f"broker {self.broker} did not acknowledge the prompt")
            answer = self._await_answer(inbox, accepted, topics.submit(target), payload, timeout_s)
            if answer is None:
                raise JobError(f"no answer within {timeout_s:.0f} s; job {job_id} goes on at {target}")
        finally:
            with self._lock:
                self._answers.pop(job_id, None)
                self._accepted.pop(job_id, None)
                self._hooks.pop(job_id, None)
                self._streams.pop(job_id, None)
        return answer

    def _await_answer(self, inbox: queue.Queue[Answer], accepted: threading.Event, topic: str, payload: bytes,
                      timeout_s: float) -> Answer | None:
        """The answer, publishing the submit again (backing off) until the origin accepted it."""
        deadline = time.monotonic() + timeout_s
        pause = RESUBMIT_FIRST_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                return inbox.get(timeout=left if accepted.is_set() else min(pause, left))
            except queue.Empty:
                if not accepted.is_set():
                    self._client.publish(topic, payload, qos=1)
                    pause = min(pause * 2, RESUBMIT_MAX_S)
        return None

    # -- callbacks (paho thread) ------------------------------------------------------
    def _on_identity(self, message: mqtt.MQTTMessage) -> None:
        value = message.payload.decode("utf-8", errors="replace").strip()
        try:
            self._identity_value = topics.check_device(value)
            self._identity.set()
        except ValueError:
            pass

    def _on_status(self, message: mqtt.MQTTMessage) -> None:
        try:
            status = decode(message.payload, Status)
        except ProtocolError:
            return
        with self._lock:
            self._statuses[status.device] = status

    def _on_progress(self, message: mqtt.MQTTMessage) -> None:
        try:
            progress = decode(message.payload, Progress)
        except ProtocolError:
            return
        with self._lock:
            hook = self._hooks.get(progress.job_id)
            accepted = self._accepted.get(progress.job_id)
        if accepted is not None and progress.event == "accepted":
            accepted.set()
        if hook is not None:
            hook(progress)
        if self.watch is not None:
            self.watch(progress)

    def _on_answer(self, message: mqtt.MQTTMessage) -> None:
        try:
            answer = decode(message.payload, Answer)
        except ProtocolError:
            return
        with self._lock:
            waiting = self._answers.get(answer.job_id)
        # Only the origin knows the submit's secret: an answer without it is forged.
        if waiting is None or not hmac.compare_digest(waiting[1], answer.secret):
            return
        with self._lock:
            stream = self._streams.pop(answer.job_id, None)
        if stream is not None and answer.ok:
            # Same thread as the chunks: whatever the stream missed follows it, once.
            rest = stream[1].rest(answer.answer)
            if rest:
                stream[2](rest)
        waiting[0].put(answer)

    def _on_chunk(self, message: mqtt.MQTTMessage) -> None:
        try:
            chunk = decode(message.payload, Chunk)
        except ProtocolError:
            return
        with self._lock:
            stream = self._streams.get(chunk.job_id)
        # The submit's secret, as on answers: chunks from anyone but the origin are dropped.
        if stream is None or not hmac.compare_digest(stream[0], chunk.secret):
            return
        added = stream[1].add(chunk.offset, chunk.text)
        if added:
            stream[2](added)
