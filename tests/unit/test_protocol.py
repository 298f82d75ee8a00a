import json

import pytest

from edge_agent.errors import ProtocolError
from edge_agent.wire import topics
from edge_agent.wire.messages import Answer, Inference, Progress, Result, Status, Submit, Task, decode


def task(**overrides):
    base = dict(task_id="j1/1/edge-1/0", job_id="j1", origin="edge-1", layer=1, role="propose", prompt="hi")
    return Task(**{**base, **overrides})


def test_round_trip_every_kind():
    messages = [
        task(references=["a", "b"], instruction="merge"),
        Result(task_id="t", job_id="j", device="edge-2", layer=1, role="propose", ok=True, text="x"),
        Submit(job_id="j", prompt="p", layers=1, proposers=2, reply_to="edge-3"),
        Status(device="edge-1", online=True, alpha=0.5, peers=["edge-2"]),
        Progress(job_id="j", origin="edge-1", event="answer", layer=1, answers_in=1, expected=3),
        Answer(job_id="j", origin="edge-1", ok=True, answer="a",
               inferences=[Inference(layer=1, role="propose", device="edge-1", seconds=1.0,
                                     prompt_tokens=3, completion_tokens=4)]),
    ]
    for message in messages:
        assert decode(message.encode(), type(message)) == message


def test_version_and_kind_are_on_the_wire():
    body = json.loads(task().encode())
    assert body["v"] == 1 and body["kind"] == "task"


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\xff\xfe", "UTF-8"),
        (b"not json", "UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"v": 2, "kind": "task"}).encode(), "version"),
        (json.dumps({"v": 1, "kind": "result"}).encode(), "expected a 'task'"),
        (json.dumps({"v": 1, "kind": "task", "task_id": "t"}).encode(), "missing field"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"v": 1, "kind": "task", "task_id": "t", "job_id": "j", "origin": "edge-1", "layer": 1, '
         b'"role": "propose", "prompt": "\\ud800"}', "lone surrogate"),
        (json.dumps({"v": 1, "kind": "task", "task_id": "t", "job_id": "j", "origin": "edge-1", "layer": 1,
                     "role": "propose", "prompt": "p", "secret": "../+#"}).encode(), "secret"),
    ],
)
def test_malformed_payloads_are_rejected_with_a_reason(payload, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(payload, Task)


def test_wrong_types_unknown_fields_and_bad_roles_are_rejected():
    good = json.loads(task().encode())
    for change, reason in [
        ({"layer": "1"}, "expected an integer"),
        ({"layer": True}, "expected an integer"),
        ({"references": "abc"}, "expected a list"),
        ({"references": [1]}, "expected str"),
        ({"surprise": 1}, "unknown field"),
        ({"role": "vote"}, "role must be"),
        ({"layer": 0}, "layer must be"),
        ({"origin": "Not/A#Device"}, "origin is not a device id"),
        ({"job_id": "a/b"}, "job_id"),
        ({"task_id": ""}, "task_id"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"references": ["r"] * 65}, "at most 64 references"),
    ]:
        with pytest.raises(ProtocolError, match=reason):
            decode(json.dumps({**good, **change}).encode(), Task)


def test_booleans_numbers_and_nested_messages_are_checked_by_their_own_type():
    good = json.loads(Answer(job_id="j", origin="edge-1", ok=True, answer="a", inferences=[
        Inference(layer=1, role="propose", device="edge-1", seconds=1.0, prompt_tokens=3, completion_tokens=4),
    ]).encode())
    assert decode(json.dumps({**good, "inferences": [{**good["inferences"][0], "seconds": 2}]}).encode(),
                  Answer).inferences[0].seconds == 2.0  # a JSON integer is a number
    for change, reason in [
        ({"ok": 1}, "ok: expected bool"),
        ({"ok": "true"}, "ok: expected bool"),
        ({"inferences": [{**good["inferences"][0], "seconds": True}]}, r"inferences\[0\]\.seconds: expected a number"),
        ({"inferences": [{**good["inferences"][0], "seconds": "1"}]}, "expected a number"),
        ({"inferences": ["not an object"]}, r"inferences\[0\]: expected an object"),
        ({"inferences": [{**good["inferences"][0], "layer": 1.5}]}, "expected an integer"),
    ]:
        with pytest.raises(ProtocolError, match=reason):
            decode(json.dumps({**good, **change}).encode(), Answer)


def test_oversized_message_is_rejected_before_parsing():
    big = task(prompt="x" * 5000).encode()
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(big, Task, max_bytes=1000)


def test_submit_limits_and_ids_are_checked():
    good = json.loads(Submit(job_id="j", prompt="p", layers=1, proposers=1).encode())
    for change in ({"layers": 9}, {"proposers": -1}, {"job_id": "a/b"}, {"reply_to": "Not A Device"}):
        with pytest.raises(ProtocolError):
            decode(json.dumps({**good, **change}).encode(), Submit)


def test_status_accepts_null_estimates_and_ints_for_floats():
    body = json.loads(Status(device="edge-1", online=True).encode())
    body["alpha"] = 2
    assert decode(json.dumps(body).encode(), Status).alpha == 2.0


def test_topics_are_built_in_one_shape():
    assert topics.task("edge-1") == "dmoa/v1/to/edge-1/task"
    assert topics.answer("edge-1", "abc") == "dmoa/v1/to/edge-1/answer/abc"
    assert topics.status("edge-2") == "dmoa/v1/from/edge-2/status"
    assert topics.device_of("dmoa/v1/from/edge-2/status") == "edge-2"
    assert topics.device_of("other/topic") is None
    assert topics.bridge_patterns("edge-1", "edge-2") == ["dmoa/v1/to/edge-2/#", "dmoa/v1/from/edge-1/#"]
    for bad in ("Edge-1", "edge/1", "", "-x", "a+b", "#"):
        with pytest.raises(ValueError):
            topics.task(bad)


def test_a_result_or_status_must_name_a_valid_device():
    result = json.loads(Result(task_id="t", job_id="j", device="edge-2", layer=1, role="propose", ok=True).encode())
    with pytest.raises(ProtocolError, match="device is not a device id"):
        decode(json.dumps({**result, "device": "x y"}).encode(), Result)
    status = json.loads(Status(device="edge-1", online=True).encode())
    with pytest.raises(ProtocolError, match="device is not a device id"):
        decode(json.dumps({**status, "device": ""}).encode(), Status)
