"""One typed settings object for the agent: a YAML file plus environment overrides.

Precedence (highest first): EDGE_AGENT_<FIELD> environment variables, the
YAML file given with --config (or EDGE_AGENT_CONFIG), the defaults below.
Everything is validated at start so that a bad value fails with one line.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from edge_agent.errors import ConfigError
from edge_agent.theory.peerchoice import Policy
from edge_agent.wire import topics

DEFAULT_INSTRUCTION = (
    "Several assistants have answered the user's request below; their numbered answers follow. "
    "Some of them may be wrong, incomplete or biased. Weigh them critically and write one "
    "accurate, well-organised answer of your own to the request. Do not mention the other "
    "answers or this process; reply only with the answer."
)

ENV_PREFIX = "EDGE_AGENT_"

EngineKind = Literal["llama", "fake"]
FakeDistribution = Literal["deterministic", "exponential"]
AdmissionMode = Literal["degrade", "reject", "accept"]
"""What a prompt gets when its (M, k) would push the mesh over the stability threshold."""


@dataclass(frozen=True)
class AgentConfig:
    device: str
    """This board's device id: lower-case letters, digits and '-' (never the hostname)."""
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    broker_username: str = ""
    broker_password_file: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    keepalive_s: int = 10
    data_dir: str = "/var/lib/edge-agent"
    """Holds the durable store (queue, jobs, outbox)."""
    engine: EngineKind = "llama"
    """'llama' (llama-cpp-python) or 'fake' (fixed-time engine for experiments and tests)."""
    model: str = "smollm2-135m-instruct-q4_1"
    """A model card name or a path to a GGUF file."""
    models_dir: str = ""
    n_ctx: int = 2048
    n_threads: int = 0
    """0 means all of the cores this process may use."""
    n_gpu_layers: int = -1
    """Layers offloaded to the GPU when llama.cpp was built with CUDA (Jetson); -1 means all."""
    temperature: float = 0.7
    max_tokens: int = 256
    """Budget of each proposer's answer (layers 1..M)."""
    final_max_tokens: int = 512
    """Budget of the final aggregation, the answer the user reads: larger, so it ends where it means to."""
    seed: int = -1
    fake_seconds: float = 0.5
    fake_distribution: FakeDistribution = "deterministic"
    layers: int = 1
    """Default M for prompts submitted at this board."""
    proposers: int = 2
    """Default k for prompts submitted at this board."""
    policy: Policy = "uniform"
    aggregation_instruction: str = DEFAULT_INSTRUCTION
    max_prompt_chars: int = 8000
    max_message_bytes: int = 256 * 1024
    status_interval_s: float = 2.0
    peer_stale_s: float = 10.0
    """A peer unheard for this long counts as offline even without its last will."""
    task_timeout_s: float = 120.0
    """Deadline for a remote task, added to the peer's announced expected wait."""
    inference_timeout_s: float = 900.0
    """An inference running longer is killed (worker restarted, task retried once)."""
    max_queue: int = 1000
    """Tasks beyond this many queued are refused with an error result."""
    resend_window_s: float = 60.0
    """Results and answers sent this recently are sent again whenever the agent (re)connects to
    its broker: the broker saves what it holds only every autosave interval (10 s as rendered)."""
    admission: AdmissionMode = "degrade"
    """What a new prompt gets when its (M, k) would push the mesh-wide rho over
    admission_threshold: 'degrade' (run the richest (M, k) that fits), 'reject'
    (an error answer naming one that fits) or 'accept' (run it anyway, noted)."""
    admission_threshold: float = 0.9
    """Mesh-wide rho = ((k+1)M+1)·mean lambda·alpha_max above which admission control acts."""
    api_host: str = "127.0.0.1"
    """Address `edge-agent api` listens on (the board's LAN address to serve the network)."""
    api_port: int = 8080
    api_key_file: str = ""
    """File holding the API key clients send as a bearer token (required by `edge-agent api`)."""
    api_timeout_s: float = 600.0
    """A chat completion not answered by the mesh within this gets 504."""
    api_max_concurrent: int = 32
    """Requests in flight beyond this get 429."""

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "agent.db"


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> AgentConfig:
    """Read the YAML file (if any), apply environment and keyword overrides, validate."""
    raw: dict[str, Any] = {}
    path = path or os.environ.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as err:
            raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config {path} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping of settings")
        raw.update(loaded)
    hints = typing.get_type_hints(AgentConfig)
    for f in fields(AgentConfig):
        env = os.environ.get(ENV_PREFIX + f.name.upper())
        if env is not None:
            raw[f.name] = env
    raw.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(raw) - {f.name for f in fields(AgentConfig)}
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "device" not in raw:
        raise ConfigError("setting 'device' is required (this board's device id)")
    values = {name: _coerce(name, hints[name], value) for name, value in raw.items()}
    return validate(AgentConfig(**values))


def _coerce(name: str, hint: Any, value: Any) -> Any:
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}")
        return value
    try:
        if hint is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if hint is int:
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r}: {value!r} is not a valid {hint.__name__}") from None
    return value


def validate(cfg: AgentConfig) -> AgentConfig:
    try:
        topics.check_device(cfg.device)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    checks = [
        (1 <= cfg.broker_port <= 65535, "broker_port must be 1..65535"),
        (cfg.n_ctx >= 256, "n_ctx must be at least 256"),
        (0 < cfg.max_tokens < cfg.n_ctx, "max_tokens must be positive and below n_ctx"),
        (0 < cfg.final_max_tokens < cfg.n_ctx, "final_max_tokens must be positive and below n_ctx"),
        (1 <= cfg.api_port <= 65535, "api_port must be 1..65535"),
        (cfg.api_timeout_s > 0, "api_timeout_s must be positive"),
        (cfg.api_max_concurrent > 0, "api_max_concurrent must be positive"),
        (0 <= cfg.layers <= 8, "layers must be 0..8"),
        (0 <= cfg.proposers <= 64, "proposers must be 0..64"),
        (cfg.status_interval_s > 0, "status_interval_s must be positive"),
        (cfg.peer_stale_s > cfg.status_interval_s, "peer_stale_s must exceed status_interval_s"),
        (cfg.task_timeout_s > 0, "task_timeout_s must be positive"),
        (cfg.inference_timeout_s > 0, "inference_timeout_s must be positive"),
        (cfg.keepalive_s >= 5, "keepalive_s must be at least 5"),
        (cfg.max_prompt_chars > 0, "max_prompt_chars must be positive"),
        (cfg.admission_threshold > 0, "admission_threshold must be positive"),
        (cfg.resend_window_s >= 0, "resend_window_s must be zero or more"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return cfg


def read_secret(path: str | os.PathLike[str], what: str) -> str:
    """A password or key kept in a file (its first line); ConfigError naming the file if unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(f"cannot read the {what} file {path}: {reason}") from None
    return text.strip()


def dump_config(cfg: AgentConfig) -> str:
    body = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    return yaml.safe_dump(body, sort_keys=False)


__all__ = ["AgentConfig", "DEFAULT_INSTRUCTION", "dump_config", "load_config", "replace", "validate"]
