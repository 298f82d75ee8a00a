"""The job state machine, driven by hand: tasks are read from the outbox, results fed back."""


import pytest
from coordinator_harness import Harness

from edge_agent.wire import topics
from edge_agent.wire.messages import Answer, Result, Status, Submit


@pytest.mark.parametrize("layers, proposers", [(0, 0), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2), (3, 3)])
def test_exactly_k_plus_1_times_m_plus_1_inferences(tmp_path, layers, proposers):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="why?", layers=layers, proposers=proposers))
    answers = []
    for _ in range(layers + 1):
        tasks = h.sent()
        assert tasks, "every layer sends work"
        for task in tasks:
            h.answer(task)
    final = [m for _, m in h.sent() if isinstance(m, Answer)]
    answers = final
    assert len(answers) == 1 and answers[0].ok
    inferences = answers[0].inferences
    assert len(inferences) == (proposers + 1) * layers + 1
    for layer in range(1, layers + 1):
        devices = [i.device for i in inferences if i.layer == layer]
        assert devices[0] == "edge-1" and len(set(devices)) == proposers + 1
        assert all(i.role == "propose" for i in inferences if i.layer == layer)
    last = [i for i in inferences if i.layer == layers + 1]
    assert [(i.device, i.role) for i in last] == [("edge-1", "aggregate")]


def test_later_layers_get_the_previous_answers_in_slot_order(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=2, proposers=1))
    layer1 = h.sent()
    for task in reversed(layer1):  # arrival order must not matter
        h.answer(task)
    layer2 = h.sent()
    expected = [f"{topics.device_of(t)}@1" for t, _ in layer1]
    assert all(m.references == expected for _, m in layer2)
    assert all(m.instruction == h.cfg.aggregation_instruction for _, m in layer2)


def test_fewer_live_peers_than_k_is_recorded(tmp_path):
    h = Harness(tmp_path, peers=("edge-2",))
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=3))
    assert len(h.sent()) == 2
    assert "1 of 3 peers live" in h.store.job("j").notes[0]


def test_a_late_peer_is_replaced_once_then_skipped(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=2))
    layer1 = h.sent()
    own = [t for t in layer1 if topics.device_of(t[0]) == "edge-1"][0]
    remote = [t for t in layer1 if topics.device_of(t[0]) != "edge-1"]
    h.answer(own)
    h.answer(remote[0])
    h.now += 32  # the other peer misses its deadline (30 s + its own service time of 1 s)
    h.coordinator.tick()
    (replacement,) = h.sent()
    used = {topics.device_of(t) for t, _ in layer1}
    assert topics.device_of(replacement[0]) not in used
    assert replacement[1].task_id.endswith("/1")
    assert not h.store.job("j").degraded
    h.now += 32  # the replacement misses its deadline too
    h.coordinator.tick()
    (final,) = h.sent()
    assert final[1].role == "aggregate" and len(final[1].references) == 2
    h.answer(final)
    (answer,) = [m for _, m in h.sent()]
    assert answer.ok and answer.degraded
    assert len(answer.inferences) == 3  # (k+1)M+1 = 4, less the missing answer of layer 1
    h.answer(remote[1])  # the original straggler finally answers: ignored
    assert h.sent() == []


@pytest.mark.parametrize("step_s", [3600.0, -3600.0])
def test_a_stepped_wall_clock_neither_fires_a_deadline_early_nor_keeps_one_from_firing(tmp_path, step_s):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=1))
    layer1 = h.sent()
    h.answer([t for t in layer1 if topics.device_of(t[0]) == "edge-1"][0])
    h.wall_offset = step_s  # an RTC-less board sets its clock mid-job
    h.now += 30
    h.coordinator.tick()
    assert h.sent() == [], "30 s in, within the 31 s allowance: nothing fires"
    h.now += 2
    h.coordinator.tick()
    (replacement,) = h.sent()
    assert replacement[1].task_id.endswith("/1"), "32 s in: the deadline fired"


def test_after_a_restart_a_pending_task_gets_its_whole_allowance_again(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=1))
    h.sent()
    h.now += 1e6  # the board was off for a long while, and its clock may be anything now
    restarted = h.new_coordinator()
    restarted.resume()
    h.sent()
    restarted.tick()
    assert h.sent() == [], "a resumed task is not declared late at once"
    h.now += 32
    restarted.tick()
    assert len(h.sent()) == 1


def test_a_peer_that_goes_offline_is_replaced_without_waiting(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=1))
    layer1 = h.sent()
    peer = [topics.device_of(t) for t, _ in layer1 if topics.device_of(t) != "edge-1"][0]
    h.peers.update(Status(device=peer, online=False), now=0.0)
    h.coordinator.tick()
    (replacement,) = h.sent()
    assert topics.device_of(replacement[0]) not in (peer, "edge-1")
    assert any(e.event == "redispatched" for e in h.events)


def test_a_failed_final_aggregation_fails_the_job(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=0, proposers=0))
    (task,) = h.sent()
    h.answer(task, ok=False)
    (answer,) = [m for _, m in h.sent()]
    assert not answer.ok and "boom" in answer.error


def test_over_long_and_empty_prompts_are_refused(tmp_path):
    h = Harness(tmp_path, max_prompt_chars=10)
    h.coordinator.accept(Submit(job_id="j", prompt="x" * 11, layers=1, proposers=1))
    (answer,) = [m for _, m in h.sent()]
    assert not answer.ok and "max_prompt_chars" in answer.error
    h.coordinator.accept(Submit(job_id="k", prompt="   ", layers=1, proposers=1))
    (answer,) = [m for _, m in h.sent()]
    assert not answer.ok and "empty" in answer.error


def test_a_repeated_submit_resends_the_answer_instead_of_running_again(tmp_path):
    h = Harness(tmp_path)
    submit = Submit(job_id="j", prompt="q", layers=0, proposers=0)
    h.coordinator.accept(submit)
    h.answer(h.sent()[0])
    first = h.sent()
    h.coordinator.accept(submit)
    again = h.sent()
    assert [m.answer for _, m in first] == [m.answer for _, m in again]
    assert all(isinstance(m, Answer) for _, m in again)


def test_answers_go_to_the_reply_to_device(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=0, proposers=0, reply_to="edge-9"))
    h.answer(h.sent()[0])
    (topic, _), = h.sent()
    assert topic == "dmoa/v1/to/edge-9/answer/j"


def test_resume_after_restart_continues_a_job(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=1))
    layer1 = h.sent()
    for task in layer1:
        h.answer(task)
    h.store.close()
    again = Harness(tmp_path)  # a new process on the same store
    again.coordinator.resume()
    sent = again.sent()
    # The pending aggregation waits in the device's own queue, once: committed with the layer
    # that led to it, it needs no re-sending.
    assert [(topic, m.role, len(m.references)) for topic, m in sent] == [(topics.task("edge-1"), "aggregate", 2)]


def test_a_loss_recorded_just_before_a_crash_is_handled_after_restart(tmp_path):
    h = Harness(tmp_path)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=1))
    layer1 = h.sent()
    remote = [t for t in layer1 if topics.device_of(t[0]) != "edge-1"][0]
    h.store.abandon(remote[1].task_id, "edge-x missed its deadline")  # ...and the agent dies here
    again = Harness(tmp_path)
    again.coordinator.resume()
    (replacement,) = [t for t in again.sent() if t[1].task_id.endswith("/1")]
    assert topics.device_of(replacement[0]) not in ("edge-1", topics.device_of(remote[0]))
    assert "re-sent" in again.store.job("j").notes[-1]


def test_a_job_missing_an_answer_is_degraded_even_without_a_note(tmp_path):
    h = Harness(tmp_path, peers=("edge-2",))
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=1))
    own, remote = sorted(h.sent(), key=lambda t: topics.device_of(t[0]) != "edge-1")
    h.answer(own)
    h.answer(remote, ok=False)  # no other peer to re-send to
    (final,) = h.sent()
    h.answer(final)
    (answer,) = [m for _, m in h.sent()]
    assert answer.ok and answer.degraded


def test_truncation_of_references_is_reported_in_the_answer(tmp_path):
    h = Harness(tmp_path, peers=())
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=0))
    h.answer(h.sent()[0])
    ((_, final),) = h.sent()
    h.coordinator.on_result(Result(task_id=final.task_id, job_id="j", device="edge-1", layer=2, role="aggregate",
                                   ok=True, text="merged", truncated=True, secret=final.secret))
    (answer,) = [m for _, m in h.sent()]
    assert [i.truncated for i in answer.inferences] == [False, True]
