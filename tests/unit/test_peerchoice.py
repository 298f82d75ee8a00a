import random
from collections import Counter

import pytest

from edge_agent.theory.peerchoice import PeerLoad, choose_peers


def _peers(*loads: tuple[int, float]) -> list[PeerLoad]:
    return [PeerLoad(f"d{i}", queue, alpha) for i, (queue, alpha) in enumerate(loads)]


@pytest.mark.parametrize("policy", ["uniform", "least-loaded"])
def test_distinct_peers_never_the_excluded_one(policy: str) -> None:
    rng = random.Random(1)
    pool = _peers(*[(i % 3, 1.0) for i in range(6)])
    for _ in range(200):
        chosen = choose_peers(pool, 3, policy, rng, exclude=["d0"])  # type: ignore[arg-type]
        assert len(chosen) == 3 == len(set(chosen))
        assert "d0" not in chosen


@pytest.mark.parametrize("policy", ["uniform", "least-loaded"])
def test_fewer_candidates_than_k_returns_all_of_them(policy: str) -> None:
    pool = _peers((0, 1.0), (5, 1.0), (1, 2.0))
    chosen = choose_peers(pool, 5, policy, random.Random(0), exclude=["d1"])  # type: ignore[arg-type]
    assert sorted(chosen) == ["d0", "d2"]
    assert choose_peers(pool, 0, policy, random.Random(0)) == []  # type: ignore[arg-type]


def test_least_loaded_ranks_by_queue_plus_one_times_alpha() -> None:
    # waits: d0 (3+1)*1=4, d1 (0+1)*3=3, d2 (1+1)*1=2, d3 (0+1)*5=5
    pool = _peers((3, 1.0), (0, 3.0), (1, 1.0), (0, 5.0))
    assert choose_peers(pool, 2, "least-loaded", random.Random(0)) == ["d2", "d1"]


def test_least_loaded_breaks_ties_at_random() -> None:
    pool = _peers((0, 1.0), (0, 1.0), (4, 1.0))
    firsts = Counter(choose_peers(pool, 1, "least-loaded", random.Random(seed))[0] for seed in range(200))
    assert set(firsts) == {"d0", "d1"}
    assert min(firsts.values()) > 60


def test_uniform_ignores_load() -> None:
    rng = random.Random(3)
    pool = _peers((50, 9.0), (0, 1.0), (0, 1.0), (0, 1.0))
    counts = Counter(p for _ in range(4000) for p in choose_peers(pool, 2, "uniform", rng))
    assert all(abs(counts[d] - 2000) < 150 for d in ("d0", "d1", "d2", "d3"))


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        choose_peers(_peers((0, 1.0)), -1, "uniform", random.Random(0))
    with pytest.raises(ValueError):
        choose_peers(_peers((0, 1.0)), 1, "round-robin", random.Random(0))  # type: ignore[arg-type]
