"""Reading a judge's verdict, and the win rate with its standard error."""

import math

import pytest

from edge_agent.evaluation.judge import (
    JudgeClient,
    clip,
    judge_outputs,
    ours_first,
    parse_choice,
    preference_from_logprobs,
    win_rate,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("A", "A"), ("B", "B"), (" B\n", "B"), ("**A**", "A"), ("B.", "B"), ("(A)", "A"),
    ("Answer B", "B"), ("answer a is better", "A"), ("Output (B)", "B"),
    ("The answer that is better is Answer B", "B"), ("I think B is better.", "B"),
    ("A: the first one", "A"),
    ("", None), ("a", None), ("Both are fine", None), ("The answer is not possible to determine", None),
    ("Answer A and Answer B are equal", None), ("Bananas", None), ("Absolutely", None),
])
def test_parse_choice(text, expected):
    assert parse_choice(text) == expected


def test_preference_from_logprobs_weighs_the_two_letters():
    top = [{"token": "A", "logprob": math.log(0.6)}, {"token": " B", "logprob": math.log(0.2)},
           {"token": "Answer", "logprob": math.log(0.1)}]
    assert preference_from_logprobs(top) == pytest.approx(0.75)
    assert preference_from_logprobs([{"token": "B", "logprob": -0.1}]) == 0.0
    assert preference_from_logprobs([{"token": "Answer", "logprob": -0.1}]) is None
    assert preference_from_logprobs([]) is None


def test_win_rate_and_standard_error():
    assert win_rate([]) is None
    one = win_rate([1.0])
    assert (one.rate, one.se, one.n) == (100.0, 0.0, 1)
    rate = win_rate([1.0, 0.0, 1.0, 0.5])
    mean = 0.625
    se = math.sqrt(sum((p - mean) ** 2 for p in [1.0, 0.0, 1.0, 0.5]) / 3 / 4)
    assert rate.rate == pytest.approx(62.5)
    assert rate.se == pytest.approx(100 * se)
    assert rate.n == 4


def test_order_is_random_but_reproducible():
    draws = [ours_first(0, "M1k1", i) for i in range(400)]
    assert draws == [ours_first(0, "M1k1", i) for i in range(400)]
    assert 0.4 < sum(draws) / len(draws) < 0.6
    assert draws != [ours_first(0, "M2k1", i) for i in range(400)]


def test_clip_marks_cut_answers():
    assert clip("short", 10) == ("short", False)
    text, cut = clip("x" * 50, 10)
    assert cut and text.startswith("x" * 10) and text.endswith("[...]")


class _Scripted(JudgeClient):
    """A judge whose endpoint always prefers the answer shown first."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9/v1", model="scripted")
        self.calls = 0

    def compare(self, instruction, first, second):
        self.calls += 1
        return 1.0, "text", "A"


def test_verdicts_map_back_to_ours_and_are_cached():
    judge = _Scripted()
    items = [(i, f"q{i}", f"ours {i}", f"ref {i}") for i in range(6)]
    current, fresh = judge_outputs(judge, "M1k1", items, seed=0, cached=[])
    assert judge.calls == 6 and len(fresh) == 6
    for row in current:
        # "first is better" means ours won exactly when ours was shown first
        assert row["preference"] == (1.0 if ours_first(0, "M1k1", row["index"]) else 0.0)
    again, fresh_again = judge_outputs(judge, "M1k1", items, seed=0, cached=current)
    assert judge.calls == 6 and fresh_again == [] and again == current
    changed = items[:5] + [(5, "q5", "a new answer", "ref 5")]
    _, fresh_changed = judge_outputs(judge, "M1k1", changed, seed=0, cached=current)
    assert [r["index"] for r in fresh_changed] == [5]


def test_an_unreachable_judge_is_recorded_not_raised():
    judge = JudgeClient("http://127.0.0.1:9/v1", model="x", timeout_s=2)
    row = judge.judge("q", "ours", "ref", ours_is_first=True)
    assert row["preference"] is None and row["method"] == "error" and "cannot reach" in row["error"]


@pytest.mark.parametrize(("text", "expected"), [
    ("A good answer would be B", None), ("B) is what I pick", "B"), ("A\nbecause it is clearer", "A"),
])
def test_a_leading_article_is_not_a_verdict(text, expected):
    assert parse_choice(text) == expected
