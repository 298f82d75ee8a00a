"""The import contracts in pyproject.toml hold, and the checker does catch a broken one."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS, "lint-imports is part of the test extra"
    return subprocess.run([LINT_IMPORTS, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_package_keeps_its_import_contracts():
    result = run()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_contract_the_package_breaks_is_reported(tmp_path):
    # The node imports the wire; a contract claiming the opposite order must fail.
    config = tmp_path / "contracts.ini"
    config.write_text(
        "[importlinter]\nroot_package = edge_agent\n\n"
        "[importlinter:contract:reversed]\nname = reversed\ntype = layers\n"
        "layers =\n    edge_agent.wire\n    edge_agent.node\n"
    )
    result = run("--config", str(config))
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
