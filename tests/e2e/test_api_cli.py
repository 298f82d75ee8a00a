"""`edge-agent api` refuses to start without a usable key, in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("settings, message", [
    ("", "api_key_file is not set"),
    ("api_key_file: /nonexistent/api.key\n", "cannot read the API key file /nonexistent/api.key"),
    ("api_key_file: {short}\n", "shorter than 16 characters"),
    ("api_key_file: {good}\napi_port: 0\n", "api_port must be 1..65535"),
])
def test_the_api_will_not_serve_without_a_key(tmp_path, settings, message):
    (tmp_path / "short").write_text("abc\n")
    (tmp_path / "good").write_text("x" * 32)
    config = tmp_path / "agent.yaml"
    config.write_text("device: edge-1\n" + settings.format(short=tmp_path / "short", good=tmp_path / "good"))
    out = subprocess.run([sys.executable, "-m", "edge_agent", "api", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line
