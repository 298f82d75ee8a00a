import math

import pytest

from edge_agent.errors import ConfigError
from edge_agent.theory.stability import (
    PlanRow,
    default_configs,
    device_rho,
    inferences_per_prompt,
    lambda_star,
    mesh_load,
    mesh_rho,
    parse_alphas,
    plan,
    predicted_latency,
    recommend,
    rho,
    richest_fit,
    utilisation,
)
from edge_agent.wire.messages import Status


@pytest.mark.parametrize(("layers", "proposers", "expected"), [(0, 0, 1), (0, 3, 1), (1, 1, 3), (2, 2, 7), (2, 3, 9)])
def test_inferences_per_prompt(layers: int, proposers: int, expected: int) -> None:
    assert inferences_per_prompt(layers, proposers) == expected


def test_lambda_star_uses_the_slowest_board() -> None:
    assert lambda_star(2, 2, [1.0, 2.0, 0.5]) == pytest.approx(1 / (7 * 2.0))
    assert lambda_star(0, 0, [4.0]) == pytest.approx(0.25)


def test_rho_is_the_theorem_form() -> None:
    assert rho(1, 1, 0.1, [1.0, 3.0]) == pytest.approx(3 * 0.1 * 3.0)
    assert rho(1, 1, lambda_star(1, 1, [1.0, 3.0]), [1.0, 3.0]) == pytest.approx(1.0)
    assert device_rho(0.5, 1.5) == pytest.approx(0.75)


def test_invalid_inputs_raise_config_error() -> None:
    for call in (
        lambda: lambda_star(1, 1, []),
        lambda: lambda_star(1, 1, [0.0]),
        lambda: inferences_per_prompt(-1, 0),
        lambda: plan([1.0, 1.0], 0.0),
        lambda: plan([1.0, 1.0], 0.1, [(1, 2)]),
        lambda: device_rho(-1.0, 1.0),
    ):
        with pytest.raises(ConfigError):
            call()


def test_predicted_latency_homogeneous_closed_form() -> None:
    layers, proposers, rate, alpha = 2, 2, 0.05, 1.0
    load = 7 * rate * alpha
    harmonic = 1 + 1 / 2 + 1 / 3
    expected = (layers * harmonic + 1) * alpha / (1 - load)
    assert predicted_latency(layers, proposers, rate, [alpha] * 8) == pytest.approx(expected, rel=1e-4)


def test_predicted_latency_single_inference_is_mm1_per_origin() -> None:
    alphas, rate = [1.0, 2.0, 2.0], 0.2
    expected = sum(a / (1 - rate * a) for a in alphas) / 3
    assert predicted_latency(0, 0, rate, alphas) == pytest.approx(expected)


def test_predicted_latency_slow_peers_cost_more_than_fast_ones() -> None:
    fast = predicted_latency(1, 1, 0.05, [1.0, 1.0, 1.0, 1.0])
    mixed = predicted_latency(1, 1, 0.05, [1.0, 1.0, 3.0, 3.0])
    slow = predicted_latency(1, 1, 0.05, [3.0] * 4)
    assert fast < mixed < slow


def test_predicted_latency_is_infinite_at_or_past_the_bound() -> None:
    assert predicted_latency(1, 1, lambda_star(1, 1, [1.0, 2.0]), [1.0, 2.0]) == math.inf


def test_plan_covers_every_configuration() -> None:
    rows = plan([1.0] * 4 + [2.0] * 4, 0.03)
    assert [(r.layers, r.proposers) for r in rows] == default_configs(8)
    assert len(rows) == 1 + 3 * 8
    for row in rows:
        assert row.stable == (row.rho < 1)
        assert math.isfinite(row.latency) == row.stable
        assert row.as_dict()["latency"] == (row.latency if row.stable else None)


def test_recommend_richest_stable_then_fastest() -> None:
    rows = plan([1.0] * 4, 0.05)
    best = recommend(rows)
    assert best is not None and best.stable
    assert best.inferences == max(r.inferences for r in rows if r.stable)
    # M=1 k=3 and M=2 k=1 both cost 5 inferences: the lower predicted latency wins.
    a = PlanRow(1, 3, 5, 0.1, 0.5, 6.0, True)
    b = PlanRow(2, 1, 5, 0.1, 0.5, 8.0, True)
    c = PlanRow(2, 3, 9, 0.05, 1.2, math.inf, False)
    assert recommend([b, a, c]) == a
    assert recommend([c]) is None


def test_parse_alphas_accepts_repeats_and_commas() -> None:
    assert parse_alphas(["1.0", "2,3", " 4 5 "]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(ConfigError):
        parse_alphas(["1", "fast"])
    with pytest.raises(ConfigError):
        parse_alphas(["-1"])


def test_utilisation_is_rho_from_scalars() -> None:
    assert utilisation(2, 2, 0.05, 2.0) == pytest.approx(rho(2, 2, 0.05, [1.0, 2.0]))


def test_mesh_rho_mean_lambda_and_alpha_max_over_online_devices() -> None:
    statuses = [
        Status(device="a", online=True, alpha=1.0, lam=0.1),
        Status(device="b", online=True, alpha=3.0, lam=0.0),  # an idle user still counts in the mean
        Status(device="c", online=True, alpha=None, lam=0.2),  # λ counts, α unknown
        Status(device="d", online=True, alpha=2.0, lam=None),  # α counts, λ unknown
        Status(device="e", online=False, alpha=9.0, lam=5.0),  # offline: ignored
    ]
    load = mesh_load(statuses)
    assert load is not None
    assert (load.devices, load.lam, load.alpha_max, load.slowest) == (4, pytest.approx(0.1), 3.0, "b")
    assert mesh_rho(statuses, 1, 1) == pytest.approx(3 * 0.1 * 3.0)
    assert load.rho(2, 2) == pytest.approx(7 * 0.1 * 3.0)


def test_mesh_rho_is_unknown_without_alpha_or_lambda() -> None:
    assert mesh_rho([], 1, 1) is None
    assert mesh_rho([Status(device="a", online=True, alpha=None, lam=0.3)], 1, 1) is None
    assert mesh_rho([Status(device="a", online=True, alpha=1.0, lam=None)], 1, 1) is None
    assert mesh_rho([Status(device="a", online=False, alpha=1.0, lam=0.3)], 1, 1) is None


def test_richest_fit_most_inferences_then_fewest_layers() -> None:
    # λ·α_max = 0.25: J ≤ 3 fits within 0.9; M=2,k=0 and M=1,k=1 both cost 3.
    assert richest_fit(2, 2, 0.25, 1.0, 0.9) == (1, 1)
    assert richest_fit(2, 0, 0.25, 1.0, 0.9) == (2, 0)
    assert richest_fit(2, 2, 0.1, 1.0, 0.9) == (2, 2)
    assert richest_fit(3, 2, 0.5, 1.0, 0.9) == (0, 0)
    assert richest_fit(3, 2, 1.0, 1.0, 0.9) is None


def test_stability_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = ("import sys, edge_agent.theory.stability, edge_agent.node.estimates\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'matplotlib'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
