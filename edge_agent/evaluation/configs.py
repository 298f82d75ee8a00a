"""Configurations of the experiment, written as in the paper's tables: M1k2 is
M = 1 layer of proposers with k = 2 peers each."""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.errors import ConfigError

DEFAULT_CONFIGS = "M0k0,M1k1,M1k2,M2k1,M2k2,M1k3,M2k3"
_PATTERN = re.compile(r"^M(\d)k(\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True)
class Config:
    layers: int
    proposers: int

    @property
    def name(self) -> str:
        return f"M{self.layers}k{self.proposers}"

    @property
    def label(self) -> str:
        return f"M={self.layers}, k={self.proposers}"

    @property
    def inferences(self) -> int:
        """Inferences per prompt, (k+1)·M + 1: also the factor in Theorem 1."""
        return (self.proposers + 1) * self.layers + 1

    def rho(self, rate_per_user: float, alpha_max: float) -> float:
        """Theorem 1 / Remark 1: the queues are stable when ((k+1)M+1)·λ·α_max < 1."""
        return self.inferences * rate_per_user * alpha_max


def parse(text: str) -> Config:
    match = _PATTERN.match(text.strip())
    if not match:
        raise ConfigError(f"configuration {text!r} is not of the form M<layers>k<proposers>, e.g. M1k2")
    layers, proposers = int(match.group(1)), int(match.group(2))
    if layers > 8 or proposers > 64:
        raise ConfigError(f"configuration {text!r}: M must be 0..8 and k 0..64")
    if layers == 0 and proposers != 0:
        raise ConfigError(f"configuration {text!r}: with M = 0 the origin answers alone, so k must be 0")
    return Config(layers, proposers)


def parse_list(text: str) -> list[Config]:
    configs: list[Config] = []
    for part in text.split(","):
        if part.strip():
            config = parse(part)
            if config not in configs:
                configs.append(config)
    if not configs:
        raise ConfigError("--configs names no configuration")
    return configs
