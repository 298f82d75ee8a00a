"""The TUI against real local meshes (mosquitto + agents with the fake engine), driven by Pilot."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time

import pytest
from click.testing import CliRunner
from textual.message import Message

from edge_agent.cli import cli
from edge_agent.client.status import read_statuses
from edge_agent.client.submit import SubmitClient, new_job_id
from edge_agent.ops.localmesh import VirtualDevice
from edge_agent.tui.app import make_app
from edge_agent.tui.messages import AnswerReceived, ConnectionChanged, ProgressReceived
from edge_agent.tui.widgets.ask import AskPanel
from edge_agent.tui.widgets.devices import DevicesTable
from edge_agent.tui.widgets.jobs import JobsPanel
from edge_agent.wire.messages import Answer
from edge_agent.wire.mqtt import BrokerAddress

from .conftest import FROZEN, FakeSubmitter, progress, wait_for

SIZE = (140, 44)


def submit_in_background(device: VirtualDevice, jobs: list[tuple[str, int, int]],
                         answers: list[Answer]) -> threading.Thread:
    """Submit (job_id, M, k) jobs at a device, all at once, each answer appended as it comes."""
    def one(client: SubmitClient, job_id: str, layers: int, proposers: int) -> None:
        answers.append(client.submit(f"question {job_id}", layers, proposers, job_id=job_id, timeout_s=60))

    def run() -> None:
        with SubmitClient(BrokerAddress.parse(device.broker)) as client:
            threads = [threading.Thread(target=one, args=(client, *job), daemon=True) for job in jobs]
            for t in threads:
                t.start()
            for t in threads:
                t.join(70)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_table_shows_the_queues_the_agents_report(mesh: list[VirtualDevice]) -> None:
    app = make_app(mesh[0].broker)
    async with app.run_test(size=SIZE):
        table = app.query_one(DevicesTable)
        names = [d.device for d in mesh]
        await wait_for(lambda: app.state.online_count() == len(mesh), 10)
        answers: list[Answer] = []
        load = [submit_in_background(d, [(new_job_id(), 1, 2) for _ in range(2)], answers) for d in mesh]
        compared: dict[str, set[int]] = {name: set() for name in names}
        host, port = mesh[0].host, mesh[0].port
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (any(t.is_alive() for t in load) or not all(compared.values())):
            reported = await asyncio.to_thread(read_statuses, host, port, 0.3)
            await app.refresh_views(force=True)
            if app.drawn_revision != app.state.revision:
                continue  # a status came in while drawing: the table is not the state's yet
            for row in reported:
                shown = app.state.devices[row["device"]].status
                if shown.ts == row["ts"]:  # the very status the agent last published
                    assert table.queue_of(row["device"]) == row["queue"]
                    compared[row["device"]].add(row["queue"])
        assert all(compared.values()), f"no comparable sample for some device: {compared}"
        assert any(max(seen) > 0 for seen in compared.values()), f"queues stayed empty: {compared}"
        assert len(answers) == 6 and all(a.ok for a in answers)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_jobs_progress_advances_to_its_latency(mesh: list[VirtualDevice]) -> None:
    app = make_app(mesh[0].broker)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: app.state.online_count() == len(mesh), 10)
        job_id, answers = new_job_id(), list[Answer]()
        worker = submit_in_background(mesh[1], [(job_id, 2, 2)], answers)
        panel = app.query_one(JobsPanel)
        seen: list[list[tuple[int, int]]] = []
        while worker.is_alive() or not seen or seen[-1] != [(3, 3), (3, 3), (1, 1)]:
            card = panel.cards.get(job_id)
            if card is not None:
                bars = [bar.answers() for bar in card.bars()]
                if None not in bars and (not seen or bars != seen[-1]):
                    seen.append(bars)
            await asyncio.sleep(0.05)
        assert len(seen) >= 3, seen
        for before, after in itertools.pairwise(seen):  # steps never vanish, answers only ever go up
            assert len(after) >= len(before), seen
            assert all(a >= b for (a, _), (b, _) in zip(after, before, strict=False)), seen
        card = panel.cards[job_id]
        # The "done" event travels on its own (QoS 0, another bridge hop) and may trail the answer.
        await wait_for(lambda: "latency" in str(card.query_one(".job-head").render()), 10)
        assert answers[0].ok and app.state.jobs.jobs[job_id].latency_s == answers[0].latency_s


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_prompt_asked_in_the_tui_gets_its_answer(mesh: list[VirtualDevice]) -> None:
    messages: list[Message] = []
    app = make_app(mesh[2].broker, layers=1, proposers=1)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await wait_for(lambda: app.state.identity == mesh[2].device, 10)
        await pilot.press("slash", *"how warm is the board", "enter")
        received = await wait_for(lambda: [m for m in messages if isinstance(m, AnswerReceived)], 30)
        answer = received[0].answer
        assert answer.ok and (answer.layers, answer.proposers) == (1, 1)
        assert answer.origin == mesh[2].device
        assert "how warm is the board" in app.query_one(AskPanel).answers_text()
        await wait_for(lambda: app.state.jobs.jobs.get(answer.job_id), 5)
        assert app.state.jobs.jobs[answer.job_id].mine


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_device_that_stops_shows_offline(small_mesh: list[VirtualDevice]) -> None:
    app = make_app(small_mesh[0].broker)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: app.state.online_count() == 2, 10)
        os.killpg(small_mesh[1].agent_pid, signal.SIGTERM)  # a clean stop publishes online=False
        await wait_for(lambda: app.state.online_count() == 1, 20)
        await app.refresh_views(force=True)
        seen = app.query_one(DevicesTable).get_cell(small_mesh[1].device, "seen")
        assert str(seen).startswith("○ off")
        assert app.query_one("#devices").border_subtitle == "1 of 2 online"


# -- without a mesh ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_keys_change_m_and_k_and_typing_never_triggers_them() -> None:
    submitter = FakeSubmitter()
    app = make_app("127.0.0.1:1883", live=False, clock=lambda: FROZEN, submitter=lambda: submitter)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m", "m", "k")
        assert (app.moa_layers, app.moa_proposers) == (1, 0)
        await pilot.press("slash", *"make queues quick", "enter")
        await wait_for(lambda: submitter.prompts, 5)
        assert submitter.prompts == [("make queues quick", 1, 0)]
        assert (app.moa_layers, app.moa_proposers) == (1, 0) and app.is_running


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_clear_removes_finished_jobs_only() -> None:
    app = make_app("127.0.0.1:1883", live=False, clock=lambda: FROZEN)
    async with app.run_test(size=SIZE) as pilot:
        app.post_message(ProgressReceived(progress("d1", "done", seconds=2.0), FROZEN))
        app.post_message(ProgressReceived(progress("r1", "accepted"), FROZEN))
        await pilot.pause()
        await app.refresh_views(force=True)
        assert set(app.query_one(JobsPanel).cards) == {"d1", "r1"}
        await pilot.press("c")
        assert set(app.query_one(JobsPanel).cards) == {"r1"}


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_an_unreachable_broker_is_reported_and_retried() -> None:
    messages: list[Message] = []
    app = make_app("127.0.20.250:1", clock=lambda: FROZEN)
    async with app.run_test(size=SIZE, message_hook=messages.append):
        await wait_for(lambda: [m for m in messages if isinstance(m, ConnectionChanged)], 10)
        await app.refresh_views(force=True)
        assert "cannot reach broker 127.0.20.250:1" in app.sub_title
        assert not app.state.connected


def test_the_command_fails_in_one_line_when_the_broker_is_unreachable() -> None:
    result = CliRunner().invoke(cli, ["tui", "--broker", "127.0.20.250:1"])
    assert result.exit_code == 1
    assert "cannot reach broker 127.0.20.250:1" in result.output
