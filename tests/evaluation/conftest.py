"""Fixtures for the evaluation tests: the AlpacaEval file beside the repository,
local meshes (real SmolLM2 and fake engine) and a real OpenAI-compatible server."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.meshes import running_mesh

from edge_agent.errors import ModelError
from edge_agent.ops.modelcards import resolve_model

REPO = Path(__file__).resolve().parents[2]
ALPACA_FILE = REPO / ".." / "shared" / "data" / "alpaca_eval" / "gpt4_1106_preview_outputs.json"
MODEL = "smollm2-135m-instruct-q4_1"


@pytest.fixture(scope="session")
def alpaca_file() -> Path:
    if not ALPACA_FILE.is_file():
        pytest.skip(f"AlpacaEval reference file not found at {ALPACA_FILE.resolve()}")
    return ALPACA_FILE.resolve()


@pytest.fixture(scope="session")
def model_path() -> str:
    try:
        return resolve_model(MODEL)[0]
    except ModelError as err:
        pytest.skip(f"{err} (make setup fetches it)")


@pytest.fixture(scope="module")
def llama_mesh(tmp_path_factory, model_path):
    """Two devices answering with the real SmolLM2 through llama.cpp (short answers)."""
    # admission "accept" (running_mesh's default): each configuration runs as asked, whatever the load
    with running_mesh(tmp_path_factory.mktemp("llama-mesh"), 2, fake_seconds=0, max_tokens=32) as devices:
        yield devices


@pytest.fixture(scope="module")
def fake_mesh(tmp_path_factory):
    """Three devices with the fake engine: fast, for concurrency and interruption."""
    with running_mesh(tmp_path_factory.mktemp("fake-mesh"), 3, engine="fake", fake_seconds=0.2) as devices:
        yield devices


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory, model_path):
    """llama-cpp-python's own OpenAI-compatible server with SmolLM2; yields its base URL."""
    missing = [m for m in ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama_cpp.server needs {', '.join(missing)} (pip install -e '.[test]')")
    port = free_port()
    log = tmp_path_factory.mktemp("judge") / "server.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {server.returncode}: {log.read_text()[-800:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as response:
                    if json.loads(response.read()).get("data"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer within 90 s")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
