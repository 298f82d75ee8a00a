"""Poisson arrivals at uniformly drawn devices."""

import math
import statistics

import pytest

from edge_agent.errors import ConfigError
from edge_agent.evaluation.arrivals import offsets, schedule


def test_same_seed_same_schedule_other_seed_other():
    assert schedule(list(range(20)), 4, 0.25, seed=3) == schedule(list(range(20)), 4, 0.25, seed=3)
    assert schedule(list(range(20)), 4, 0.25, seed=3) != schedule(list(range(20)), 4, 0.25, seed=4)


def test_gaps_are_exponential_at_the_mesh_rate():
    # n users at λ each: the mesh sees rate n·λ, so the mean gap is 1/(n·λ) and its
    # standard deviation equals its mean.
    gaps = [a.gap_s for a in schedule(list(range(20000)), 4, 0.25, seed=1)]
    assert statistics.fmean(gaps) == pytest.approx(1.0, rel=0.03)
    assert statistics.pstdev(gaps) == pytest.approx(1.0, rel=0.05)
    # Poisson counts: P(no arrival within 1 s) = e^-1
    assert sum(g > 1.0 for g in gaps) / len(gaps) == pytest.approx(math.exp(-1), abs=0.015)


def test_devices_are_drawn_uniformly():
    slots = [a.slot for a in schedule(list(range(12000)), 3, 0.1, seed=2)]
    for slot in range(3):
        assert slots.count(slot) / len(slots) == pytest.approx(1 / 3, abs=0.02)
    assert set(slots) == {0, 1, 2}


def test_offsets_accumulate_gaps_and_a_subset_keeps_its_own_gaps():
    plan = schedule([5, 9, 11, 14], 2, 0.5, seed=0)
    times = offsets(plan)
    assert times == pytest.approx([sum(a.gap_s for a in plan[: i + 1]) for i in range(4)])
    assert all(b > a for a, b in zip(times[:-1], times[1:], strict=True))
    resumed = offsets([plan[1], plan[3]])  # prompts 9 and 14 still to run
    assert resumed == pytest.approx([plan[1].gap_s, plan[1].gap_s + plan[3].gap_s])


def test_schedule_is_the_same_for_every_configuration_and_keyed_by_prompt():
    plan = schedule([0, 1, 2], 4, 0.25, seed=7)
    assert [a.index for a in plan] == [0, 1, 2]


@pytest.mark.parametrize(("devices", "rate"), [(0, 0.25), (3, 0.0), (3, -1.0), (3, float("nan"))])
def test_invalid_inputs_are_refused(devices, rate):
    with pytest.raises(ConfigError):
        schedule([0, 1], devices, rate, seed=0)
