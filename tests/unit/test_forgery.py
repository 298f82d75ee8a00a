"""A board cannot answer in another board's name: every task carries a secret only its addressee
reads, and the origin takes a result only with that secret; every answer echoes its submit's secret."""

import json

import pytest
from coordinator_harness import Harness

from edge_agent.errors import ProtocolError
from edge_agent.wire import topics
from edge_agent.wire.messages import Answer, Result, Submit


def forged(task, device, text="FORGED", secret=""):
    return Result(task_id=task.task_id, job_id=task.job_id, device=device, layer=task.layer, role=task.role,
                  ok=True, text=text, secret=secret)


def test_a_result_without_its_tasks_secret_is_rejected_and_changes_nothing(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=2))
    tasks = h.sent()
    (_, peer_task), *_ = [(t, m) for t, m in tasks if topics.device_of(t) != "edge-1"]
    addressee = peer_task.task_id.split("/")[2]
    for attempt in (forged(peer_task, addressee), forged(peer_task, addressee, secret="0" * 32),
                    forged(peer_task, "edge-4", secret=peer_task.secret)):
        with pytest.raises(ProtocolError, match="forged"):
            h.coordinator.on_result(attempt)
    assert {d.state for d in h.store.dispatches("j", 1) if d.task_id == peer_task.task_id} == {"pending"}
    for task in tasks:
        h.answer(task)
    (_, final), = h.sent()
    assert "FORGED" not in "".join(final.references)
    h.answer(("dmoa/v1/to/edge-1/task", final))
    (answer,) = [m for _, m in h.sent()]
    assert answer.ok and len(answer.inferences) == 4


def test_each_task_has_its_own_secret_and_no_event_or_answer_reveals_it(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=2, proposers=2, secret="ab" * 16))
    secrets = []
    while True:
        sent = h.sent()
        answers = [m for _, m in sent if isinstance(m, Answer)]
        if answers:
            break
        secrets += [m.secret for _, m in sent]
        for task in sent:
            h.answer(task)
    assert len(secrets) == len(set(secrets)) == 3 + 3 + 1 and all(len(s) == 32 for s in secrets)
    (answer,) = answers
    assert answer.secret == "ab" * 16, "the answer echoes the submit's secret"
    published = [e.encode() for e in h.events] + [json.dumps(answer.inferences, default=vars).encode()]
    assert not [s for s in secrets if any(s.encode() in p for p in published)]


def test_resumed_tasks_are_sent_again_with_the_secret_they_were_first_sent_with(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=2))
    first = {m.task_id: m.secret for topic, m in h.sent() if topics.device_of(topic) != "edge-1"}
    assert len(first) == 2
    h.coordinator.resume()
    again = {m.task_id: m.secret for _, m in h.sent()}
    assert again == first  # the peers' tasks; the device's own is in its queue, never re-sent
