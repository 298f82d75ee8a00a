"""The code stays clean by the project's own ruff rules (pyproject.toml [tool.ruff]).

Checked: the package, the lab, the tests and the benchmarks."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is missing: run `make setup` (it is in the test extra)")
    out = subprocess.run([ruff, "check", "--output-format", "concise", "edge_agent", "lab", "tests", "benchmarks"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
