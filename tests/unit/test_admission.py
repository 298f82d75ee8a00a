"""Admission control in Coordinator.accept, driven by hand as in test_moa.py: peers' statuses carry
alpha and lam, this device's own estimates come from an Estimator on a fake clock."""

import coordinator_harness
import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.node.estimates import Estimator
from edge_agent.wire.messages import Answer, Status, Submit

# Three peers at 1/3 prompt/s each, this device's user idle: mean λ over the 4 devices is 0.25/s.
# With α_max = 1 s, ρ = J·0.25: M=2,k=2 (J=7) gives 1.75, M=1,k=2 (J=4) exactly 1.0, and the
# richest (M, k) within 0.9 has J=3: M=1,k=1 (M=2,k=0 costs as much but has more layers).
BUSY = {"edge-2": (1.0, 1 / 3), "edge-3": (0.5, 1 / 3), "edge-4": (0.5, 1 / 3)}


def Harness(tmp_path, peers=BUSY, own_alpha=0.5, **settings):  # noqa: N802 (reads as the class it builds)
    """A busy mesh, and this device's own α measured."""
    return coordinator_harness.Harness(tmp_path, peers=peers, own_alpha=own_alpha, **settings)


def admission_notes(answer):
    return [n for n in answer.notes if n.startswith("admission")]


def test_degrade_runs_the_richest_configuration_that_fits(tmp_path):
    h = Harness(tmp_path)  # admission defaults to degrade at 0.9
    first, answer = h.run(2, 2)
    assert answer.ok
    assert len(first) == 2  # layer 1 of M=1, k=1: the origin and one peer
    assert (answer.layers, answer.proposers) == (1, 1)
    assert len(answer.inferences) == 3
    (note,) = admission_notes(answer)
    assert note.startswith("admission: degraded from M=2,k=2 to M=1,k=1 (ρ=1.75 > 0.9")
    assert "ρ=0.75 after" in note and "edge-2" in note
    assert h.store.job("j").notes == answer.notes
    assert h.events[0].event == "accepted" and (h.events[0].layers, h.events[0].proposers) == (1, 1)


def test_degrade_keeps_what_fits_and_prefers_fewer_layers(tmp_path):
    h = Harness(tmp_path, peers={"edge-2": (1.0, 0.2), "edge-3": (1.0, 0.2), "edge-4": (1.0, 0.2)})
    # λ̄ = 0.15: J ≤ 6 fits. M=2,k=2 (J=7) goes to M=2,k=1 (J=5, beats M=1,k=2 with J=4).
    _, answer = h.run(2, 2)
    assert (answer.layers, answer.proposers) == (2, 1)
    _, answer = h.run(1, 2, job_id="k")  # J=4 fits as asked: no note
    assert (answer.layers, answer.proposers) == (1, 2) and admission_notes(answer) == []


def test_reject_answers_with_an_error_naming_a_configuration_that_fits(tmp_path):
    h = Harness(tmp_path, admission="reject")
    h.coordinator.accept(Submit(job_id="j", prompt="why?", layers=2, proposers=2))
    (message,) = [m for _, m in h.sent()]  # no task went out, only the answer
    assert isinstance(message, Answer) and not message.ok
    assert message.error == "mesh utilisation ρ=1.75 for M=2, k=2 exceeds 0.9; try M=1, k=1"
    (note,) = admission_notes(message)
    assert note.startswith("admission: rejected M=2,k=2 (ρ=1.75 > 0.9")
    assert h.store.job("j").state == "failed"
    assert h.estimator.inferences() == 0  # the refused prompt counts in λ but ran nothing


def test_reject_when_not_even_one_inference_fits(tmp_path):
    h = Harness(tmp_path, admission="reject", peers={"edge-2": (1.0, 2.0)})
    h.coordinator.accept(Submit(job_id="j", prompt="why?", layers=1, proposers=1))
    (message,) = [m for _, m in h.sent()]
    assert "exceeds 0.9; even M=0 does not fit" in message.error


def test_degrade_when_the_mesh_is_overloaded_whatever_runs(tmp_path):
    h = Harness(tmp_path, peers={"edge-2": (1.0, 2.0)})  # λ̄·α_max = 1: even M=0 is at ρ = 1
    _, answer = h.run(2, 1)
    assert answer.ok and (answer.layers, answer.proposers) == (0, 0)
    (note,) = admission_notes(answer)
    assert "to M=0,k=0" in note and "still over, the mesh is overloaded" in note
    _, answer = h.run(0, 0, job_id="k")
    assert answer.ok and "nothing lighter than M=0,k=0" in admission_notes(answer)[0]


def test_an_invalid_prompt_is_refused_before_admission(tmp_path):
    h = Harness(tmp_path, admission="reject")
    h.coordinator.accept(Submit(job_id="j", prompt="  ", layers=2, proposers=2))
    (message,) = [m for _, m in h.sent()]
    assert message.error == "prompt is empty" and admission_notes(message) == []


def test_accept_runs_as_asked_and_notes_it(tmp_path):
    h = Harness(tmp_path, admission="accept")
    first, answer = h.run(2, 2)
    assert answer.ok and (answer.layers, answer.proposers) == (2, 2)
    assert len(first) == 3 and len(answer.inferences) == 7
    (note,) = admission_notes(answer)
    assert note.startswith("admission: accepted M=2,k=2 anyway (ρ=1.75 > 0.9")


def test_the_threshold_is_a_setting(tmp_path):
    h = Harness(tmp_path, admission_threshold=2.0)
    _, answer = h.run(2, 2)
    assert (answer.layers, answer.proposers) == (2, 2) and admission_notes(answer) == []


def test_no_estimates_yet_admits_everything(tmp_path):
    unmeasured = {name: (None, 5.0) for name in ("edge-2", "edge-3", "edge-4")}
    h = Harness(tmp_path, peers=unmeasured, own_alpha=None, admission="reject")
    first, answer = h.run(3, 3)
    assert answer.ok and (answer.layers, answer.proposers) == (3, 3)
    assert len(first) == 4 and admission_notes(answer) == []


def test_own_estimate_counts_and_offline_peers_do_not(tmp_path):
    # Peers report no α; this device is slow (α = 4 s), so its estimate alone sets α_max.
    peers = {"edge-2": (None, 0.08), "edge-3": (None, 0.08), "edge-4": (None, 0.08)}
    h = Harness(tmp_path, peers=peers, own_alpha=4.0)
    h.peers.update(Status(device="edge-9", online=False, alpha=100.0, lam=9.0), now=0.0)
    # λ̄ = 0.24/4 = 0.06, α_max = 4: ρ = 0.24·J, so J ≤ 3 fits.
    _, answer = h.run(1, 3)
    assert (answer.layers, answer.proposers) == (1, 1)
    assert "on edge-1" in admission_notes(answer)[0]


def test_the_estimator_records_what_ran(tmp_path):
    h = Harness(tmp_path)
    h.run(2, 2)  # degraded to M=1, k=1
    assert h.estimator.inferences() == 3
    assert h.estimator.lam() == pytest.approx(1 / 300)
    assert h.estimator.rho() == pytest.approx(3 / 300 * 0.5)


def test_estimator_rho_uses_the_configuration_in_use():
    clock = [0.0]
    est = Estimator(layers=1, proposers=2, rate_window_s=100.0, clock=lambda: clock[0])
    clock[0] = 200.0
    assert est.rho() is None  # α not measured yet
    est.record_inference(2.0, 5)
    assert est.inferences() == 4 and est.rho() == 0.0  # no prompt in the window: the defaults, λ = 0
    for j in (3, 7):  # M=1,k=1 and M=2,k=2
        est.record_arrival(j)
    assert est.lam() == pytest.approx(2 / 100)
    assert est.inferences() == 5
    assert est.rho() == pytest.approx(5 * 2 / 100 * 2.0)
    clock[0] = 301.0  # both prompts left the window
    assert est.lam() == 0.0 and est.inferences() == 4


def test_a_young_agent_does_not_mistake_its_first_prompts_for_a_high_rate():
    clock = [0.0]
    est = Estimator(layers=1, proposers=2, rate_window_s=300.0, min_span_s=60.0, clock=lambda: clock[0])
    clock[0] = 2.0
    est.record_arrival(4)
    est.record_arrival(4)
    assert est.lam() == pytest.approx(2 / 60)  # not 2 / 2 s
    clock[0] = 120.0
    assert est.lam() == pytest.approx(2 / 120)


def test_admission_settings_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="admission must be one of degrade, reject, accept"):
        load_config(device="edge-1", data_dir=str(tmp_path), admission="drop")
    with pytest.raises(ConfigError, match="admission_threshold must be positive"):
        load_config(device="edge-1", data_dir=str(tmp_path), admission_threshold=0)


def test_submit_prints_the_admission_note_even_when_quiet(monkeypatch):
    from click.testing import CliRunner

    from edge_agent.commands import submit as command

    notes = ["layer 1: 1 of 2 peers live", "admission: degraded from M=2,k=2 to M=1,k=1 (ρ=1.75 > 0.9)"]
    answer = Answer(job_id="j", origin="edge-1", ok=True, answer="42", layers=1, proposers=1, notes=notes)

    class Client:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def submit(self, *args, **kwargs):
            return answer

    monkeypatch.setattr(command, "SubmitClient", Client)
    done = CliRunner().invoke(command.submit, ["why?", "-M", "2", "-k", "2", "--quiet"])
    assert done.exit_code == 0, done.output
    assert done.stdout == "42\n"
    assert done.stderr == f"note: {notes[1]}\n"
    loud = CliRunner().invoke(command.submit, ["why?"])
    assert all(f"note: {n}" in loud.stderr for n in notes)


def test_the_decision_is_a_pure_function_of_the_statuses():
    from edge_agent.node.admission import decide

    busy = [Status(device=d, online=True, alpha=a, lam=lam) for d, (a, lam) in BUSY.items()]
    busy.append(Status(device="edge-1", online=True, alpha=0.5, lam=0.0))  # this device: idle user
    assert decide(2, 2, [], "degrade", 0.9).note == "", "nothing measured: admitted as asked"
    degraded = decide(2, 2, busy, "degrade", 0.9)
    assert (degraded.layers, degraded.proposers, degraded.error) == (1, 1, "")
    rejected = decide(2, 2, busy, "reject", 0.9)
    assert rejected.error.startswith("mesh utilisation") and "try M=1, k=1" in rejected.error
    assert decide(2, 2, busy, "degrade", 0.9) == degraded, "same statuses, same decision"
