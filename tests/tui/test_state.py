"""The TUI's reducers and figures: pure functions of the messages they are given."""

from __future__ import annotations

import pytest

from edge_agent.tui.jobs import JobTracker
from edge_agent.tui.state import STALE_S, MeshState
from edge_agent.tui.utilisation import figures, level
from edge_agent.tui.widgets.cells import activity, sparkline

from .conftest import FROZEN, progress, status


def steps(tracker: JobTracker, job_id: str) -> list[tuple[int, int, bool]]:
    return [(s.answers, s.expected, s.done) for _, s in tracker.jobs[job_id].progress()]


def test_a_job_advances_layer_by_layer_to_its_latency() -> None:
    jobs = JobTracker()
    jobs.apply(progress("j1", "accepted", layers=2, proposers=2), FROZEN)
    assert steps(jobs, "j1") == [(0, 3, False), (0, 3, False), (0, 1, False)]
    jobs.apply(progress("j1", "dispatched", layers=2, layer=1, expected=3), FROZEN + 1)
    jobs.apply(progress("j1", "answer", layers=2, layer=1, answers_in=2, expected=3), FROZEN + 2)
    assert steps(jobs, "j1")[0] == (2, 3, False)
    assert jobs.jobs["j1"].layer == 1
    jobs.apply(progress("j1", "dispatched", layers=2, layer=2, expected=2), FROZEN + 3)
    assert steps(jobs, "j1")[:2] == [(2, 3, True), (0, 2, False)]  # fewer peers live in layer 2
    jobs.apply(progress("j1", "done", layers=2, layer=3, seconds=7.5), FROZEN + 9)
    job = jobs.jobs["j1"]
    assert (job.state, job.latency_s, job.elapsed(FROZEN + 100)) == ("done", 7.5, 7.5)
    assert steps(jobs, "j1")[2] == (1, 1, True)


def test_progress_only_moves_forward_and_marks_degraded() -> None:
    jobs = JobTracker()
    jobs.apply(progress("j", "answer", layer=1, answers_in=2, expected=3), FROZEN)
    jobs.apply(progress("j", "answer", layer=1, answers_in=1, expected=3), FROZEN + 1)  # late duplicate
    jobs.apply(progress("j", "skipped", layer=1, degraded=True, device="edge-3"), FROZEN + 2)
    job = jobs.jobs["j"]
    assert steps(jobs, "j")[0] == (2, 3, False)
    assert job.degraded and job.elapsed(FROZEN + 5) == 5.0  # first seen mid-job: timed from then
    jobs.apply(progress("j", "failed", detail="final aggregation failed"), FROZEN + 6)
    jobs.apply(progress("j", "answer", layer=2, answers_in=1, expected=1), FROZEN + 7)
    assert (job.state, job.layer, job.detail) == ("failed", 1, "final aggregation failed")


def test_finished_jobs_are_bounded_and_can_be_cleared_for_good() -> None:
    jobs = JobTracker(keep_finished=2, keep_total=4)
    for i in range(5):
        jobs.apply(progress(f"d{i}", "done", seconds=1.0), FROZEN + i)
    assert [j.job_id for j in jobs.ordered()] == ["d4", "d3"]
    jobs.apply(progress("r", "accepted"), FROZEN + 10)
    assert jobs.clear_finished() == 2 and list(jobs.jobs) == ["r"]
    assert jobs.apply(progress("d4", "done"), FROZEN + 11) is None  # a late event does not bring it back
    jobs.mark_mine("r")
    assert jobs.jobs["r"].mine and jobs.active() == 1


def test_devices_keep_queue_history_and_last_seen() -> None:
    state = MeshState()
    state.apply_status(status("edge-2", queue=1, ts=FROZEN - 30), FROZEN, retained=True)
    assert state.devices["edge-2"].seen_at == FROZEN - 30  # a retained status is dated by its ts
    for queue in (2, 5, 3):
        state.apply_status(status("edge-2", queue=queue), FROZEN + queue)
    device = state.devices["edge-2"]
    assert list(device.history) == [1, 2, 5, 3]
    assert device.presence(FROZEN + 3) == "online"
    assert device.presence(FROZEN + 3 + STALE_S + 1) == "stale"
    state.apply_status(status("edge-2", online=False, ts=0.0), FROZEN + 20)  # the last will
    assert device.presence(FROZEN + 20) == "offline"
    assert device.seen_at == FROZEN + 3 and list(device.history) == [1, 2, 5, 3]
    assert state.online_count() == 0


def test_figures_use_mean_lambda_and_slowest_alpha_for_every_configuration() -> None:
    statuses = [
        status("edge-1", lam=0.02, alpha=2.0),
        status("edge-2", lam=0.04, alpha=4.0),
        status("edge-3", lam=0.5, alpha=100.0, online=False),  # gone: neither its λ nor its α counts
        status("edge-4", lam=None, alpha=None),
    ]
    f = figures(statuses, [("edge-1", 2, 3)])
    assert f.lam_mean == pytest.approx(0.03) and f.alpha_max == 4.0 and f.slowest == "edge-2"
    by_config = {(c.layers, c.proposers): c for c in f.configs}
    assert by_config[(1, 2)].inferences == 4 and by_config[(1, 2)].rho == pytest.approx(4 * 0.03 * 4.0)
    assert by_config[(2, 3)].inferences == 9 and by_config[(2, 3)].rho == pytest.approx(9 * 0.03 * 4.0)
    assert by_config[(2, 3)].lambda_star == pytest.approx(1 / 36)
    assert f.rho == pytest.approx(1.08) and level(f.rho) == "unstable"
    devices = {d.device: d for d in f.devices}
    assert devices["edge-1"].inferences == 9 and devices["edge-1"].rho == pytest.approx(9 * 0.02 * 4.0)
    assert devices["edge-4"].rho is None and "edge-3" not in devices


@pytest.mark.parametrize("rho, expected", [(None, "unknown"), (0.2, "ok"), (0.5, "busy"), (0.79, "busy"),
                                           (0.8, "warn"), (1.0, "unstable")])
def test_levels(rho: float | None, expected: str) -> None:
    assert level(rho) == expected


def test_cells() -> None:
    assert sparkline([0, 0, 0], width=4).plain == " ▁▁▁"
    assert sparkline([0, 1, 2, 4], width=4).plain == "▁▃▅█"
    assert activity(True, True, "aggregate 0123456789abcdef layer 2").plain == "aggregate 01234567 L2"
    assert activity(True, False, "").plain == "idle"
