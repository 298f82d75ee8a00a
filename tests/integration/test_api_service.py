"""`edge-agent api` on a local mesh of fake engines: what a misbehaving, impatient or
numerous client gets, and what /metrics says afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.api import KEY, auth, running_api
from support.meshes import running_mesh

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
CHAT = "/v1/chat/completions"
GOOD = {"model": "dmoa", "messages": [{"role": "user", "content": "what is a mesh?"}]}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-fake")
    with running_mesh(root / "mesh", 3, engine="fake", fake_seconds=0.1) as devices:
        yield root, devices


@pytest.fixture(scope="module")
def api(mesh):
    root, devices = mesh
    with running_api(devices[0], root) as url:
        yield url


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    assert body["error"]["message"], "a message a person can read"
    return body["error"]


@pytest.mark.parametrize("name, headers, content, status", [
    ("no key", {}, json.dumps(GOOD), 401),
    ("wrong key", auth("wrong-" + KEY), json.dumps(GOOD), 401),
    ("malformed JSON", auth(), '{"model": "dmoa", "messages": [', 400),
    ("not an object", auth(), "[1, 2]", 400),
    ("wrong types", auth(), json.dumps({**GOOD, "max_tokens": "many", "stream": "yes"}), 400),
    ("messages a string", auth(), json.dumps({"model": "dmoa", "messages": "hi"}), 400),
    ("no messages", auth(), json.dumps({"model": "dmoa", "messages": []}), 400),
    ("assistant last", auth(), json.dumps({"model": "dmoa", "messages": [{"role": "assistant", "content": "x"}]}),
     400),
    ("unknown model", auth(), json.dumps({**GOOD, "model": "gpt-4o"}), 400),
    ("10 MB body", auth(), json.dumps({**GOOD, "messages": [{"role": "user", "content": "x" * 10_000_000}]}), 413),
    ("prompt over the message limit", auth(), json.dumps(
        {**GOOD, "messages": [{"role": "user", "content": "x" * 140_000}]}), 400),
    ("over-long prompt", auth(), json.dumps(
        {**GOOD, "messages": [{"role": "user", "content": "word " * 5000}]}), 400),
    ("conversation beyond the context window", auth(), json.dumps(
        {**GOOD, "messages": [{"role": "user", "content": "word " * 1500}, {"role": "assistant", "content": "ok"},
                              {"role": "user", "content": "and?"}]}), 400),
])
def test_a_bad_request_gets_its_status_and_the_service_keeps_serving(api, name, headers, content, status):
    response = httpx.post(api + CHAT, content=content, headers={**headers, "Content-Type": "application/json"},
                          timeout=60)
    assert response.status_code == status, (name, response.text[:300])
    error_of(response)
    good = httpx.post(api + CHAT, json=GOOD, headers=auth(), timeout=60)
    assert good.status_code == 200 and good.json()["choices"][0]["message"]["content"]


def test_sixteen_concurrent_streams_are_each_answered_exactly_once(api):
    client = openai.OpenAI(base_url=api + "/v1", api_key=KEY, max_retries=0, timeout=120)

    def ask(i: int) -> tuple[int, str, int, set[str]]:
        stream = client.chat.completions.create(
            model="dmoa-m1k2", messages=[{"role": "user", "content": f"question {i} of sixteen"}], stream=True)
        text, finishes, ids = "", 0, set()
        for chunk in stream:
            ids.add(chunk.id)
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finishes += choice.finish_reason is not None
        return i, text, finishes, ids

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(ask, range(16)))
    for i, text, finishes, ids in results:
        # The fake engine's final answer names the aggregator and repeats the prompt's head.
        assert text == f"aggregate of 3 by edge-1: question {i} of sixteen", text
        assert finishes == 1 and len(ids) == 1
    assert len({ids.pop() for *_, ids in results}) == 16, "sixteen distinct jobs"


def test_a_device_model_answers_alone_from_that_device(api):
    client = openai.OpenAI(base_url=api + "/v1", api_key=KEY, max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert "fake@edge-2" in ids
    reply = client.chat.completions.create(model="fake@edge-2", messages=[{"role": "user", "content": "hi there"}])
    assert reply.choices[0].message.content == "answer by edge-2: hi there"
    assert [i["device"] for i in reply.model_extra["dmoa"]["inferences"]] == ["edge-2"]


def test_refusals_for_load_and_time_carry_their_status(mesh):
    root, devices = mesh
    with running_api(devices[1], root, api_max_concurrent=1, api_timeout_s=0.5) as url:
        with httpx.Client(timeout=60) as http:
            body = {**GOOD, "stream": True, "model": "dmoa-m2k2"}
            with http.stream("POST", url + CHAT, json=body, headers=auth()) as first:
                assert first.status_code == 200
                busy = http.post(url + CHAT, json=GOOD, headers=auth())
                assert busy.status_code == 429 and busy.headers["Retry-After"]
                error_of(busy)
                first.read()
            slow = http.post(url + CHAT, json={**GOOD, "model": "dmoa-m8k2"}, headers=auth())
            assert slow.status_code == 504, slow.text
            assert error_of(slow)["type"] == "timeout_error"


def test_metrics_parse_as_prometheus_text(api):
    httpx.post(api + CHAT, json=GOOD, headers=auth(), timeout=60).raise_for_status()
    text = httpx.get(api + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    queue = {s.labels["device"] for s in families["dmoa_device_queue_depth"].samples}
    assert queue == {"edge-1", "edge-2", "edge-3"}
    done = [s.value for s in families["dmoa_jobs"].samples
            if s.labels == {"origin": "edge-1", "outcome": "done"} and s.name == "dmoa_jobs_total"]
    assert done and done[0] >= 1
    statuses = {s.labels["status"] for s in families["dmoa_api_requests"].samples if s.name.endswith("_total")}
    assert "200" in statuses
    links = [s for s in families["dmoa_link_up"].samples]
    assert len(links) == 6 and all(s.value == 1.0 for s in links)
    for name in ("dmoa_device_alpha_seconds", "dmoa_device_worker_restarts", "dmoa_device_alerts",
                 "dmoa_api_request_seconds", "dmoa_api_first_token_seconds"):
        assert name in families


def test_submit_prints_the_streamed_answer_once(mesh):
    _, devices = mesh
    out = subprocess.run([sys.executable, "-m", "edge_agent", "submit", "stream me please", "-M", "1", "-k", "2",
                          "--broker", devices[2].broker], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "aggregate of 3 by edge-3: stream me please\n"


def test_admission_control_refusing_a_job_is_a_503_even_for_a_stream(tmp_path):
    with running_mesh(tmp_path / "mesh", 2, engine="fake", fake_seconds=0.05, admission="reject",
                      admission_threshold=0.001) as devices:
        with running_api(devices[0], tmp_path) as url, httpx.Client(timeout=60) as http:
            body = {**GOOD, "model": "dmoa-m1k1"}
            first = http.post(url + CHAT, json=body, headers=auth())
            assert first.status_code == 200, "nothing measured yet: admitted"
            for stream in (False, True):
                refused = http.post(url + CHAT, json={**body, "stream": stream}, headers=auth())
                assert refused.status_code == 503, refused.text
                assert int(refused.headers["Retry-After"]) > 0
                assert error_of(refused)["code"] == "overloaded"
