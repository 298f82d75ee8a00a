"""Screenshots of the TUI in fixed situations: injected messages, a frozen clock, no mesh.

Update the baselines with `pytest tests/tui/test_snapshots.py --snapshot-update`
after checking the report that a failing run writes.
"""

from __future__ import annotations

from collections.abc import Iterator

from textual.message import Message
from textual.pilot import Pilot

from edge_agent.tui.app import MeshApp, make_app
from edge_agent.tui.messages import ConnectionChanged, IdentityReceived, ProgressReceived, StatusReceived
from edge_agent.tui.widgets.ask import PromptInput

from .conftest import FROZEN, FakeSubmitter, progress, status, wait_for

SIZE = (140, 44)


def frozen_app() -> MeshApp:
    return make_app("127.0.0.1:1883", clock=lambda: FROZEN, live=False, submitter=FakeSubmitter,
                    job_ids=lambda: "5eed5eed00000001")


def busy_mesh() -> Iterator[Message]:
    """Four boards (one gone), two running jobs, one degraded, one done, one failed; rho >= 0.8."""
    yield ConnectionChanged(True)
    yield IdentityReceived("edge-1")
    yield StatusReceived(status("edge-4", queue=2, ts=FROZEN - 95, alpha=3.2, lam=0.03), FROZEN - 95)
    yield StatusReceived(status("edge-4", online=False, ts=0.0, alpha=None), FROZEN - 90)
    for step, (q1, q2, q3) in enumerate([(0, 0, 0), (1, 0, 1), (2, 1, 1), (4, 2, 1), (3, 2, 0), (3, 1, 0)]):
        t = FROZEN - 6 + step
        yield StatusReceived(status("edge-1", queue=q1, ts=t, lam=0.04, busy=q1 > 0,
                                    current="propose 3f9c2a1b7d6e5f40 layer 2"), t)
        yield StatusReceived(status("edge-2", queue=q2, ts=t, alpha=3.2, tokens_per_s=6.8, lam=0.02,
                                    busy=q2 > 0, current="aggregate b7e1d2c3a4f5e6d7 layer 2", cpu=97.0,
                                    temperature=71.8), t)
        yield StatusReceived(status("edge-3", queue=q3, ts=t, lam=0.03, layers=2, proposers=3,
                                    temperature=None), t)
    events = [
        (FROZEN - 40, progress("c0ffee0011223344", "done", origin="edge-3", seconds=7.4)),
        (FROZEN - 30, progress("dead00beef001122", "failed", origin="edge-2",
                               detail="final aggregation failed: edge-2 timed out")),
        (FROZEN - 21, progress("3f9c2a1b7d6e5f40", "accepted", layers=2)),
        (FROZEN - 20, progress("3f9c2a1b7d6e5f40", "dispatched", layers=2, layer=1, expected=3)),
        (FROZEN - 12, progress("3f9c2a1b7d6e5f40", "layer-done", layers=2, layer=1, answers_in=3, expected=3)),
        (FROZEN - 12, progress("3f9c2a1b7d6e5f40", "dispatched", layers=2, layer=2, expected=3)),
        (FROZEN - 3, progress("3f9c2a1b7d6e5f40", "answer", layers=2, layer=2, answers_in=2, expected=3)),
        (FROZEN - 14, progress("b7e1d2c3a4f5e6d7", "dispatched", origin="edge-2", layer=1, expected=3)),
        (FROZEN - 9, progress("b7e1d2c3a4f5e6d7", "answer", origin="edge-2", layer=1, answers_in=2, expected=3)),
        (FROZEN - 5, progress("b7e1d2c3a4f5e6d7", "skipped", origin="edge-2", layer=1, degraded=True)),
        (FROZEN - 5, progress("b7e1d2c3a4f5e6d7", "dispatched", origin="edge-2", layer=2, expected=1,
                              degraded=True)),
        (FROZEN - 2, progress("a11ce00000000001", "accepted", origin="edge-3", layers=2, proposers=3)),
    ]
    for received_at, event in events:
        yield ProgressReceived(event, received_at)


async def settle(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, MeshApp)
    app.query_one(PromptInput).cursor_blink = False
    await pilot.pause()
    await app.refresh_views(force=True)
    await pilot.pause()


async def inject_busy(pilot: Pilot[None]) -> None:
    for message in busy_mesh():
        pilot.app.post_message(message)
    await settle(pilot)


def test_busy_mesh(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(frozen_app(), run_before=inject_busy, terminal_size=SIZE)


def test_no_broker_yet(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def unreachable(pilot: Pilot[None]) -> None:
        pilot.app.post_message(ConnectionChanged(False, "cannot reach broker 127.0.0.1:1883: "
                                                        "Connection refused; retrying"))
        await settle(pilot)

    assert snap_compare(frozen_app(), run_before=unreachable, terminal_size=SIZE)


def test_answer_to_a_prompt_asked_here(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def ask(pilot: Pilot[None]) -> None:
        await inject_busy(pilot)
        await pilot.press("slash", *"What limits queue growth?", "enter")
        app = pilot.app
        assert isinstance(app, MeshApp)
        await wait_for(lambda: "answer to" in app.query_one("AskPanel").answers_text(), 5)  # type: ignore[attr-defined]
        await settle(pilot)

    assert snap_compare(frozen_app(), run_before=ask, terminal_size=SIZE)
