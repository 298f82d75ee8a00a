"""The official openai package and curl against `edge-agent api` on a 3-device mesh of the real model."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import openai
import pytest
from support.api import KEY, running_api
from support.meshes import running_mesh

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
QUESTION = {"role": "user", "content": "What is the capital of France? Answer in one sentence."}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-llama")
    with running_mesh(root / "mesh", 3) as devices:
        with running_api(devices[0], root) as url:
            yield url, devices


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[0] + "/v1", api_key=KEY, max_retries=0, timeout=300)


def stored_answer(device, job_id: str) -> str:
    with sqlite3.connect(Path(device.directory) / "data" / "agent.db") as db:
        (answer,) = db.execute("SELECT answer FROM jobs WHERE job_id=?", (job_id,)).fetchone()
    return str(answer)


def test_a_plain_completion_counts_every_inference(client, model_ready):
    reply = client.chat.completions.create(model="dmoa-m1k2", messages=[QUESTION], max_tokens=48)
    assert reply.object == "chat.completion" and reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    inferences = reply.model_extra["dmoa"]["inferences"]
    assert len(inferences) == 4 and reply.model_extra["dmoa"]["degraded"] is False
    assert reply.usage.prompt_tokens == sum(i["prompt_tokens"] for i in inferences) > 0
    assert reply.usage.completion_tokens == sum(i["completion_tokens"] for i in inferences)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_delivers_the_final_answer_token_by_token(client, served):
    started = time.monotonic()
    stream = client.chat.completions.create(model="dmoa-m1k2", messages=[QUESTION], max_tokens=64, stream=True)
    pieces: list[tuple[float, str]] = []
    finished_at, job_id, usage = 0.0, "", None
    for chunk in stream:
        job_id = chunk.id.removeprefix("chatcmpl-")
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append((time.monotonic() - started, choice.delta.content))
            if choice.finish_reason:
                finished_at, usage = time.monotonic() - started, chunk.usage
    text = "".join(p for _, p in pieces)
    assert len(pieces) >= 3, "tokens arrive one by one, not as one block"
    assert pieces[0][0] < finished_at, "the first token comes before the whole answer"
    assert text.strip() == stored_answer(served[1][0], job_id), "the stream is the answer, each piece once"
    assert usage is not None and usage.total_tokens > 0


def test_a_conversation_is_answered_as_a_conversation(client):
    history = [{"role": "system", "content": "You are a geography teacher."},
               {"role": "user", "content": "I am planning a trip to Europe next spring."},
               {"role": "assistant", "content": "Lovely! Which countries are you thinking of?"},
               QUESTION]
    alone = client.chat.completions.create(model="dmoa-m1k1", messages=[QUESTION], max_tokens=16)
    talk = client.chat.completions.create(model="dmoa-m1k1", messages=history, max_tokens=16)
    assert talk.choices[0].message.content.strip()
    first = [i["prompt_tokens"] for i in talk.model_extra["dmoa"]["inferences"] if i["layer"] == 1]
    first_alone = [i["prompt_tokens"] for i in alone.model_extra["dmoa"]["inferences"] if i["layer"] == 1]
    assert min(first) > max(first_alone), "every proposer read the whole conversation"


def test_models_list_names_the_mesh_and_each_device(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "dmoa"
    assert {f"smollm2-135m-instruct-q4_1@edge-{n}" for n in (1, 2, 3)} <= set(ids)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_the_stream_as_it_comes(served):
    body = json.dumps({"model": "dmoa", "stream": True, "max_tokens": 32, "messages": [QUESTION]})
    proc = subprocess.Popen(["curl", "-sN", "--max-time", "240", "-H", f"Authorization: Bearer {KEY}",
                             "-H", "Content-Type: application/json", "-d", body,
                             served[0] + "/v1/chat/completions"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [line.rstrip("\r\n") for line in proc.stdout if line.strip()]
    assert proc.wait(timeout=30) == 0
    progress = [i for i, line in enumerate(lines) if line.startswith(": layer")]
    content = [i for i, line in enumerate(lines) if line.startswith("data: {") and '"content":"' in line
               and '"content":""' not in line]
    assert progress and content and progress[0] < content[0], "MoA progress, as comments, before the answer"
    assert lines[-1] == "data: [DONE]"
    assert sum(line == "data: [DONE]" for line in lines) == 1
