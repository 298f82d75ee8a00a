"""The coordinator and chat: conversations reach every task, the final answer has its own
budget and alone is streamed, and a conversation that cannot fit is refused up front."""

from coordinator_harness import Harness

from edge_agent.wire.messages import Answer, Submit, Task, Turn

CONVERSATION = [Turn("system", "Be brief."), Turn("user", "Hi"), Turn("assistant", "Hello!"),
                Turn("user", "Name a colour.")]


def run_to_final(h, **submit):
    h.coordinator.accept(Submit(job_id="j", prompt="Name a colour.", layers=1, proposers=2, **submit))
    layer1 = h.sent()
    for task in layer1:
        h.answer(task)
    return layer1, h.sent()


def test_every_task_carries_the_conversation_and_only_the_final_one_is_streamed(tmp_path):
    h = Harness(tmp_path, max_tokens=64, final_max_tokens=300)
    layer1, final = run_to_final(h, messages=CONVERSATION, stream=True, temperature=0.2, reply_to="edge-9")
    assert all(m.messages == CONVERSATION and m.temperature == 0.2 for _, m in layer1 + final)
    assert all(m.max_tokens == 64 and m.stream_to == "" for _, m in layer1)
    (topic, last), = final
    assert isinstance(last, Task) and last.role == "aggregate" and topic.endswith("/edge-1/task")
    assert last.max_tokens == 300 and last.stream_to == "edge-9"


def test_a_client_budget_replaces_the_final_default_and_no_stream_unless_asked(tmp_path):
    h = Harness(tmp_path, final_max_tokens=300)
    _, final = run_to_final(h, max_tokens=40)
    assert final[0][1].max_tokens == 40 and final[0][1].stream_to == ""


def test_a_conversation_that_cannot_fit_is_refused_before_any_inference(tmp_path):
    h = Harness(tmp_path, n_ctx=512, max_tokens=64, final_max_tokens=128)
    long = [Turn("user", "word " * 400)]
    h.coordinator.accept(Submit(job_id="j", prompt="word", layers=1, proposers=2, messages=long))
    (_, answer), = h.sent()
    assert isinstance(answer, Answer) and not answer.ok and answer.reason == "invalid"
    assert "context window of 512" in answer.error


def test_a_conversation_must_end_with_the_user(tmp_path):
    h = Harness(tmp_path)
    turns = [Turn("user", "Hi"), Turn("assistant", "Hello!")]
    h.coordinator.accept(Submit(job_id="j", prompt="Hi", layers=0, proposers=0, messages=turns))
    (_, answer), = h.sent()
    assert answer.reason == "invalid" and "user" in answer.error


def test_an_admission_refusal_says_overloaded(tmp_path):
    h = Harness(tmp_path, peers={"edge-2": (5.0, 1.0)}, own_alpha=5.0, admission="reject",
                admission_threshold=0.01)
    h.coordinator.accept(Submit(job_id="j", prompt="q", layers=1, proposers=2))
    answers = [m for _, m in h.sent() if isinstance(m, Answer)]
    assert answers and answers[0].reason == "overloaded"
