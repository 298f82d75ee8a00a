"""Protocol v1's chat fields are optional (old messages still decode) and strictly checked."""

import json

import pytest

from edge_agent.engine.prompts import WhitespaceCounter, build_messages, check_fits
from edge_agent.errors import ModelError, ProtocolError
from edge_agent.wire import topics
from edge_agent.wire.messages import Chunk, Submit, Task, Turn, decode
from edge_agent.wire.streaming import Assembler, ChunkPublisher


def test_a_submit_with_a_conversation_round_trips():
    s = Submit(job_id="j", prompt="b", layers=1, proposers=2, messages=[Turn("user", "a"), Turn("user", "b")],
               max_tokens=100, temperature=0.5, stream=True, secret="ab" * 16)
    assert decode(s.encode(), Submit) == s


def test_messages_without_the_new_fields_still_decode():
    old = {"v": 1, "kind": "task", "task_id": "t", "job_id": "j", "origin": "edge-1", "layer": 1,
           "role": "propose", "prompt": "p"}
    task = decode(json.dumps(old).encode(), Task)
    assert task.messages == [] and task.stream_to == "" and task.temperature is None


@pytest.mark.parametrize("change", [
    {"messages": [{"role": "tool", "content": "x"}]},
    {"messages": [{"role": "user", "content": 3}]},
    {"messages": [{"role": "user"}]},
    {"temperature": 3.0},
    {"max_tokens": -1},
    {"stream": "yes"},
])
def test_bad_chat_fields_are_rejected(change):
    body = {"v": 1, "kind": "submit", "job_id": "j", "prompt": "p", "layers": 0, "proposers": 0, **change}
    with pytest.raises(ProtocolError):
        decode(json.dumps(body).encode(), Submit)


def test_chunks_round_trip_and_travel_to_the_clients_device():
    c = Chunk(job_id="j", origin="edge-1", offset=5, text=" world", secret="0f" * 16)
    assert decode(c.encode(), Chunk) == c
    assert topics.stream("edge-2", "j") == "dmoa/v1/to/edge-2/stream/j"
    assert topics.stream("edge-2", "j").startswith(topics.bridge_patterns("edge-1", "edge-2")[0][:-1])


def test_the_assembler_keeps_each_piece_once_and_in_order():
    a = Assembler()
    assert a.add(0, "Hello") == "Hello"
    assert a.add(11, "!") == ""  # early: held back
    assert a.add(0, "Hello") == ""  # duplicate
    assert a.add(5, " world") == " world!"
    assert a.text == "Hello world!"
    assert a.rest("Hello world! Bye.") == " Bye."
    assert a.rest("Something else") == ""


def test_proposers_answer_the_conversation_as_it_is():
    turns = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "Colour?")]
    built = build_messages("Colour?", [], "", 2048, 64, WhitespaceCounter(), turns)
    assert built.messages == [{"role": r, "content": c} for r, c in turns]


def test_aggregators_get_the_instruction_and_references_before_the_conversation():
    turns = [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "Colour?")]
    built = build_messages("Colour?", ["red", "blue"], "Synthesize.", 2048, 64, WhitespaceCounter(), turns)
    system, *rest = built.messages
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\nSynthesize.")
    assert "Answer 1:\nred" in system["content"] and "Answer 2:\nblue" in system["content"]
    assert rest == [{"role": r, "content": c} for r, c in turns[1:]]


def test_the_conversation_counts_against_the_references_room():
    short = build_messages("q", ["a " * 300] * 2, "i", 800, 64, WhitespaceCounter(), [("user", "q")])
    long = build_messages("q", ["a " * 300] * 2, "i", 800, 64, WhitespaceCounter(),
                          [("user", "x " * 200), ("assistant", "y"), ("user", "q")])
    assert not short.truncated and long.truncated
    with pytest.raises(ModelError):
        check_fits([("user", "x " * 600)], 3, "i", 700, 64, WhitespaceCounter())


def test_the_publisher_sends_each_piece_at_its_offset_at_qos_0_to_the_client():
    sent = []

    class Broker:
        def publish(self, topic, payload, qos=1, retain=False):
            sent.append((topic, decode(payload, Chunk), qos))

    publish = ChunkPublisher(Broker(), "edge-1", "edge-2", "j", "ab" * 16)
    for piece in ("The", " sky", " is blue."):
        publish(piece)
    assert [(c.offset, c.text) for _, c, _ in sent] == [(0, "The"), (3, " sky"), (7, " is blue.")]
    assert {(t, q) for t, _, q in sent} == {("dmoa/v1/to/edge-2/stream/j", 0)}
    assert all(c.secret == "ab" * 16 and c.origin == "edge-1" for _, c, _ in sent)
