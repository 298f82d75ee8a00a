"""Wire messages (protocol v1): frozen, strict, versioned JSON objects.

Every message carries `v` (protocol version) and `kind`. decode() accepts a
payload only if it is valid UTF-8 JSON under the size limit, of a known
version and kind, with exactly the declared fields in the declared types;
anything else raises ProtocolError, which receivers count and drop.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeVar, Union

from edge_agent.errors import ProtocolError
from edge_agent.wire import topics

VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024

Role = Literal["propose", "aggregate"]
ROLES: tuple[Role, ...] = typing.get_args(Role)


@dataclass(frozen=True)
class Message:
    KIND: ClassVar[str] = ""

    def encode(self) -> bytes:
        body = {"v": VERSION, "kind": self.KIND, **_plain(self)}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _plain(message: Message) -> dict[str, Any]:
    """A message as JSON-ready values. Not dataclasses.asdict, which deep-copies every string
    (half an encode's time on Python 3.11): fields are immutable, lists are rebuilt here."""
    body: dict[str, Any] = {}
    for name in _layout(type(message)).names:
        value = getattr(message, name)
        if isinstance(value, list):
            value = [_plain(v) if isinstance(v, Message) else v for v in value]
        elif isinstance(value, Message):
            value = _plain(value)
        body[name] = value
    return body


TurnRole = Literal["system", "user", "assistant"]
TURN_ROLES: tuple[TurnRole, ...] = typing.get_args(TurnRole)


@dataclass(frozen=True)
class Turn(Message):
    """One message of a chat conversation."""

    KIND: ClassVar[str] = "turn"
    role: TurnRole
    content: str


@dataclass(frozen=True)
class Task(Message):
    """Work for one device: answer a prompt, or aggregate references into one answer."""

    KIND: ClassVar[str] = "task"
    task_id: str
    job_id: str
    origin: str
    layer: int
    role: Role
    prompt: str
    references: list[str] = field(default_factory=list)
    instruction: str = ""
    max_tokens: int = 256
    created_at: float = 0.0
    secret: str = ""
    """Drawn by the origin for this task alone; only the addressee reads its task topic,
    so a result carrying it can only come from the addressee."""
    messages: list[Turn] = field(default_factory=list)
    """The conversation to answer (empty: the prompt alone, as one user turn)."""
    temperature: float | None = None
    """None: the device's own setting."""
    stream_to: str = ""
    """Device whose client wants this task's tokens as they come (the final aggregation only)."""


@dataclass(frozen=True)
class Result(Message):
    """A finished (or failed) task, returned to its origin."""

    KIND: ClassVar[str] = "result"
    task_id: str
    job_id: str
    device: str
    layer: int
    role: Role
    ok: bool
    text: str = ""
    error: str = ""
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    queue_wait_s: float = 0.0
    secret: str = ""
    """The task's secret, proving the result comes from the device the task was sent to."""


@dataclass(frozen=True)
class Submit(Message):
    """A local user's prompt, handed to the board's own agent."""

    KIND: ClassVar[str] = "submit"
    job_id: str
    prompt: str
    layers: int
    proposers: int
    policy: str = ""
    reply_to: str = ""
    """Device whose broker gets the answer (default: the origin's own)."""
    created_at: float = 0.0
    secret: str = ""
    """Drawn by the client; the answer echoes it, so no other board can answer in the origin's name."""
    messages: list[Turn] = field(default_factory=list)
    """The conversation (empty: the prompt alone); its last turn is the user's."""
    max_tokens: int = 0
    """Budget of the final answer (0: the origin's final_max_tokens)."""
    temperature: float | None = None
    stream: bool = False
    """Send the final aggregation's tokens as chunks while they are generated."""


@dataclass(frozen=True)
class Inference(Message):
    """One inference of a job, as reported in its answer."""

    KIND: ClassVar[str] = "inference"
    layer: int
    role: Role
    device: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    queue_wait_s: float = 0.0
    ok: bool = True
    truncated: bool = False
    """The references were cut to fit the context window."""


@dataclass(frozen=True)
class Answer(Message):
    """The outcome of a job, for the client that submitted it."""

    KIND: ClassVar[str] = "answer"
    job_id: str
    origin: str
    ok: bool
    answer: str = ""
    error: str = ""
    layers: int = 0
    proposers: int = 0
    degraded: bool = False
    notes: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    inferences: list[Inference] = field(default_factory=list)
    secret: str = ""
    """The submit's secret, echoed."""
    reason: AnswerReason = ""
    """Why a job failed, for programs: 'invalid' (the request itself), 'overloaded'
    (admission control refused it) or 'failed' (the mesh could not answer)."""


@dataclass(frozen=True)
class Chunk(Message):
    """A piece of the final answer as it is generated; best effort (QoS 0), the answer is what counts."""

    KIND: ClassVar[str] = "chunk"
    job_id: str
    origin: str
    offset: int
    """Characters of the answer before this piece: a receiver appends it only at that length."""
    text: str
    secret: str = ""
    """The submit's secret: a client ignores chunks without it."""


@dataclass(frozen=True)
class Status(Message):
    """A device's retained heartbeat; its last will is the same with online=False."""

    KIND: ClassVar[str] = "status"
    device: str
    online: bool
    ts: float = 0.0
    version: str = ""
    model: str = ""
    n_ctx: int = 0
    queue: int = 0
    busy: bool = False
    current: str = ""
    alpha: float | None = None
    tokens_per_s: float | None = None
    lam: float | None = None
    rho: float | None = None
    layers: int = 0
    proposers: int = 0
    policy: str = ""
    cpu: float | None = None
    memory: float | None = None
    temperature: float | None = None
    completed: int = 0
    rejected: int = 0
    worker_restarts: int = 0
    peers: list[str] = field(default_factory=list)
    instance: str = ""
    """Drawn at each start: two live instances of one device id are two boards claiming it."""
    alerts: list[str] = field(default_factory=list)
    """What the owner should know: a store moved aside, a device id claimed twice."""
    conflicts: list[str] = field(default_factory=list)
    """Device ids this device has seen claimed by two boards at once."""


@dataclass(frozen=True)
class Progress(Message):
    """A job event (metadata only, never prompt text), for submitters and TUIs."""

    KIND: ClassVar[str] = "progress"
    job_id: str
    origin: str
    event: ProgressEvent
    layer: int = 0
    layers: int = 0
    proposers: int = 0
    answers_in: int = 0
    expected: int = 0
    device: str = ""
    seconds: float = 0.0
    degraded: bool = False
    detail: str = ""
    ts: float = 0.0


ProgressEvent = Literal["accepted", "dispatched", "answer", "redispatched", "skipped", "layer-done", "done", "failed"]
PROGRESS_EVENTS: tuple[ProgressEvent, ...] = typing.get_args(ProgressEvent)

KINDS: dict[str, type[Message]] = {
    cls.KIND: cls for cls in (Task, Result, Submit, Answer, Status, Progress, Chunk)
}
AnswerReason = Literal["", "invalid", "overloaded", "failed"]
ANSWER_REASONS: tuple[AnswerReason, ...] = typing.get_args(AnswerReason)
MAX_TURNS = 256

M = TypeVar("M", bound=Message)


def new_secret() -> str:
    """A fresh unguessable secret for a task or a submit (128 bits, hex)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class _Layout:
    names: tuple[str, ...]
    required: frozenset[str]
    hints: dict[str, Any]


_LAYOUTS: dict[type[Message], _Layout] = {}


def _layout(cls: type[Message]) -> _Layout:
    """A message class's fields and their types, worked out once: resolving the types is most
    of a decode's cost, and every board decodes every peer's status each interval."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        known = fields(cls)
        layout = _LAYOUTS[cls] = _Layout(
            names=tuple(f.name for f in known),
            required=frozenset(f.name for f in known if f.default is MISSING and f.default_factory is MISSING),
            hints=typing.get_type_hints(cls))
    return layout


def decode(payload: bytes | bytearray, expected: type[M], max_bytes: int = MAX_MESSAGE_BYTES) -> M:
    """Parse and strictly validate one message of the expected kind."""
    if len(payload) > max_bytes:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"not UTF-8 JSON: {err}") from None
    except RecursionError:
        raise ProtocolError("JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise ProtocolError("message is not a JSON object")
    version = body.pop("v", None)
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r} (this agent speaks {VERSION})")
    kind = body.pop("kind", None)
    if kind != expected.KIND:
        raise ProtocolError(f"expected a {expected.KIND!r} message, got kind {kind!r}")
    return _build(expected, body, kind)


def _build(cls: type[M], body: dict[str, Any], where: str) -> M:
    layout = _layout(cls)
    extra = body.keys() - set(layout.names)
    if extra:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
    values: dict[str, Any] = {}
    for name in layout.names:
        if name not in body:
            if name in layout.required:
                raise ProtocolError(f"{where}: missing field {name!r}")
            continue
        values[name] = _checker(layout.hints[name])(body[name], f"{where}.{name}")
    message = cls(**values)
    _check_semantics(message, where)
    return message


Check = Callable[[Any, str], Any]
"""Validates a JSON value for one field (where names it in errors); returns the field's value."""


@functools.cache
def _checker(hint: Any) -> Check:
    """The check of one field type, built once per type: a decode runs one per field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        (inner,) = [o for o in args if o is not type(None)]
        check_inner, nullable = _checker(inner), type(None) in args

        def optional(value: Any, where: str) -> Any:
            return None if value is None and nullable else check_inner(value, where)
        return optional
    if origin is Literal:
        def literal(value: Any, where: str) -> Any:
            if not isinstance(value, str) or value not in args:
                raise ProtocolError(f"{where} must be one of {', '.join(repr(c) for c in args)}")
            return value
        return literal
    if origin is list:
        (item_type,) = args
        check_item = _checker(item_type)

        def listed(value: Any, where: str) -> Any:
            if not isinstance(value, list):
                raise ProtocolError(f"{where}: expected a list")
            return [check_item(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return listed
    if isinstance(hint, type) and issubclass(hint, Message):
        def nested(value: Any, where: str) -> Any:
            if not isinstance(value, dict):
                raise ProtocolError(f"{where}: expected an object")
            return _build(hint, dict(value), where)
        return nested
    if hint is float:
        def number(value: Any, where: str) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProtocolError(f"{where}: expected a number")
            return float(value)
        return number
    if hint in (int, bool):
        # bool is a subclass of int in Python, but JSON's true is no integer, nor 1 a boolean.
        label, want_bool = ("bool", True) if hint is bool else ("an integer", False)

        def exact(value: Any, where: str) -> Any:
            if isinstance(value, bool) is not want_bool or not isinstance(value, hint):
                raise ProtocolError(f"{where}: expected {label}")
            return value
        return exact
    if hint is str:
        def text(value: Any, where: str) -> Any:
            if not isinstance(value, str):
                raise ProtocolError(f"{where}: expected str")
            if not _encodable(value):
                raise ProtocolError(f"{where}: not valid Unicode text (a lone surrogate escape)")
            return value
        return text
    raise TypeError(f"unsupported message field type {hint!r}")  # pragma: no cover


SECRET = re.compile(r"^[0-9a-f]{0,64}$")
def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


MAX_REFERENCES = 64
MAX_TASK_TOKENS = 8192


def _check_semantics(message: Message, where: str) -> None:
    for name in ("origin", "device"):
        value = getattr(message, name, None)
        optional = isinstance(message, Progress) and name == "device"
        if value is not None and not (optional and value == "") and not topics.DEVICE_ID.match(value):
            raise ProtocolError(f"{where}: {name} is not a device id")
    job_id = getattr(message, "job_id", None)
    if job_id is not None and not topics.JOB_ID.match(job_id):
        raise ProtocolError(f"{where}: job_id must be 1-64 letters, digits, '_' or '-'")
    if isinstance(message, (Task, Result, Submit, Answer, Chunk)) and not SECRET.match(message.secret):
        raise ProtocolError(f"{where}: secret must be at most 64 lower-case hex digits")
    if isinstance(message, Status) and not SECRET.match(message.instance):
        raise ProtocolError(f"{where}: instance must be at most 64 lower-case hex digits")
    if isinstance(message, (Task, Result)) and not 0 < len(message.task_id) <= 200:
        raise ProtocolError(f"{where}: task_id must be 1-200 characters")
    if isinstance(message, Task):
        if not 0 < message.max_tokens <= MAX_TASK_TOKENS:
            raise ProtocolError(f"{where}: max_tokens must be 1..{MAX_TASK_TOKENS}")
        if len(message.references) > MAX_REFERENCES:
            raise ProtocolError(f"{where}: at most {MAX_REFERENCES} references")
    if isinstance(message, (Task, Result, Inference)) and message.layer < 1:
        raise ProtocolError(f"{where}: layer must be >= 1")
    if isinstance(message, Submit):
        if not (0 <= message.layers <= 8 and 0 <= message.proposers <= 64):
            raise ProtocolError(f"{where}: layers must be 0..8 and proposers 0..64")
        if message.reply_to and not topics.DEVICE_ID.match(message.reply_to):
            raise ProtocolError(f"{where}: reply_to is not a device id")
    _check_chat(message, where)


def _check_chat(message: Message, where: str) -> None:
    """The fields chat completions added to v1."""
    if isinstance(message, (Task, Submit)):
        if len(message.messages) > MAX_TURNS:
            raise ProtocolError(f"{where}: at most {MAX_TURNS} messages")
        if message.temperature is not None and not 0.0 <= message.temperature <= 2.0:
            raise ProtocolError(f"{where}: temperature must be 0..2")
    if isinstance(message, Task) and message.stream_to and not topics.DEVICE_ID.match(message.stream_to):
        raise ProtocolError(f"{where}: stream_to is not a device id")
    if isinstance(message, Submit) and not 0 <= message.max_tokens <= MAX_TASK_TOKENS:
        raise ProtocolError(f"{where}: max_tokens must be 0..{MAX_TASK_TOKENS}")
    if isinstance(message, Chunk) and message.offset < 0:
        raise ProtocolError(f"{where}: offset must be >= 0")
