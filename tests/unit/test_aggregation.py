import pytest

from edge_agent.engine.prompts import (
    TRUNCATION_MARK,
    WhitespaceCounter,
    build_messages,
    fair_shares,
)
from edge_agent.errors import ModelError

counter = WhitespaceCounter()


def words(n, tag="w"):
    return " ".join(f"{tag}{i}" for i in range(n))


def test_fair_shares_keep_everything_that_fits():
    assert fair_shares([3, 5, 2], 10) == [3, 5, 2]


def test_fair_shares_keep_short_answers_whole_and_split_the_rest_equally():
    shares = fair_shares([10, 100, 200], 110)
    assert shares == [10, 50, 50]
    assert sum(shares) <= 110


def test_fair_shares_with_no_budget_give_nothing():
    assert fair_shares([5, 5], 0) == [0, 0]


def test_proposer_gets_the_prompt_alone():
    built = build_messages("what is mqtt", [], "ignored", 512, 64, counter)
    assert built.messages == [{"role": "user", "content": "what is mqtt"}]
    assert not built.truncated


def test_aggregator_sees_numbered_answers_and_the_instruction():
    built = build_messages("q", ["first", "second"], "Synthesize.", 512, 64, counter)
    system, user = built.messages
    assert system["role"] == "system" and system["content"].startswith("Synthesize.")
    assert "Answer 1:\nfirst" in system["content"] and "Answer 2:\nsecond" in system["content"]
    assert user == {"role": "user", "content": "q"}


def test_long_answers_are_truncated_fairly_to_fit_the_context():
    refs = [words(20, "a"), words(600, "b"), words(600, "c")]
    built = build_messages("q", refs, "merge", 512, 64, counter)
    system = built.messages[0]["content"]
    assert built.truncated
    assert counter.count(system) + 1 + 64 <= 512
    assert words(20, "a") in system  # the short answer is kept whole
    assert system.count(TRUNCATION_MARK.strip()) == 2
    b_kept = sum(1 for w in system.split() if w.startswith("b"))
    c_kept = sum(1 for w in system.split() if w.startswith("c"))
    assert abs(b_kept - c_kept) <= 1 and b_kept > 50


def test_a_prompt_that_cannot_fit_is_refused():
    with pytest.raises(ModelError, match="context window"):
        build_messages(words(600), [], "", 512, 64, counter)
