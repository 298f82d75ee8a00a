"""The fault matrix's scenarios that a local mesh covers as well as separate boards would: load at a
steady rate, a burst past the queue's cap, and ten thousand malformed messages. Each records its row
of docs/reliability.md (`make faults`); the full-size steady load runs under the `slow` marker."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import pytest
from badinput import bad_messages
from paho.mqtt.enums import CallbackAPIVersion
from support.history import Recorder, check
from support.meshes import client_for, running_mesh, wait_for_status

from edge_agent.client.status import observer_id
from edge_agent.ops import localmesh
from edge_agent.theory.stability import inferences_per_prompt
from edge_agent.wire import topics
from edge_agent.wire.messages import Progress, Result, Status, Task, decode
from edge_agent.wire.mqtt import BrokerAddress, MeshClient

pytestmark = pytest.mark.faults


def stores(mesh) -> list[Path]:
    return [Path(d.directory) / "data" / "agent.db" for d in mesh]


@pytest.mark.parametrize("prompts", [
    pytest.param(60, id="60-prompts"),
    pytest.param(300, id="300-prompts", marks=pytest.mark.slow),
])
def test_steady_load_at_seven_tenths_of_the_bound_is_answered_within_a_minute(tmp_path, reliability, prompts):
    alpha, layers, proposers, devices = 0.2, 2, 2, 3
    rate = 0.7 / (inferences_per_prompt(layers, proposers) * alpha)  # prompts/s per device (Theorem 1)
    with running_mesh(tmp_path, devices, engine="fake", fake_seconds=alpha) as mesh:
        recorder = Recorder(mesh[0])
        try:
            started = time.monotonic()
            for n in range(prompts):  # round robin: each device's users at `rate`
                due = started + n / (rate * devices)
                time.sleep(max(0.0, due - time.monotonic()))
                recorder.offer(mesh[n % devices].device, f"prompt {n}: why is the sea salty?", layers, proposers)
            assert recorder.wait_all_answered(90), "every acknowledged prompt was answered"
        finally:
            recorder.close()
        verdict = check(recorder, stores(mesh))
    reliability(scenario=f"steady load, {devices} boards, M={layers} k={proposers}, α={alpha} s, ρ=0.7, "
                         f"{prompts} prompts", trials=prompts, lost=len(verdict.lost),
                duplicated=len(verdict.duplicated), recovered=len(verdict.recovered), recover_s=None,
                figure=f"slowest answer {verdict.latencies[-1]:.1f} s (≤ 60 s)")
    assert verdict.valid, verdict.summary()
    assert verdict.offered == verdict.acknowledged == verdict.answered == prompts
    assert not verdict.refused, verdict.summary()
    assert verdict.latencies[-1] <= 60.0


def test_a_burst_of_ten_times_the_queue_cap_is_accepted_or_refused_never_dropped(tmp_path, reliability):
    cap, offered = 20, 200
    with running_mesh(tmp_path, 1, engine="fake", fake_seconds=0.1, max_queue=cap) as (board,):
        results: dict[str, list[tuple[float, Result]]] = {}
        sent: dict[str, float] = {}
        depths: list[int] = []
        lock = threading.Condition()
        subscribed = threading.Event()

        def on_message(client, userdata, message) -> None:
            if message.topic == topics.status(board.device):
                depths.append(decode(message.payload, Status).queue)
                return
            result = decode(message.payload, Result)
            with lock:
                results.setdefault(result.task_id, []).append((time.monotonic(), result))
                lock.notify_all()

        origin = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="burst-origin")
        origin.on_message = on_message
        origin.on_subscribe = lambda *_: subscribed.set()
        origin.connect(board.host, board.port)
        origin.loop_start()
        try:
            # A fake origin edge-9 addresses work to the board; its results stay on the board's
            # broker, where this client reads them, as edge-9's bridge would.
            origin.subscribe([(topics.result("edge-9"), 1), (topics.status(board.device), 0)])
            assert subscribed.wait(10)
            start = time.monotonic()
            for n in range(offered):
                task = Task(task_id=f"burst/1/{board.device}/{n}", job_id="burst", origin="edge-9", layer=1,
                            role="propose", prompt=f"task {n}", secret=f"{n:032x}")
                sent[task.task_id] = time.monotonic()
                origin.publish(topics.task(board.device), task.encode(), qos=1).wait_for_publish(5)
                time.sleep(max(0.0, start + 5.0 * (n + 1) / offered - time.monotonic()))
            with lock:
                assert lock.wait_for(lambda: len(results) == offered, 60), f"{len(results)} of {offered} answered"
        finally:
            origin.loop_stop()
            origin.disconnect()
    refused = {t: r for t, ((_, r),) in results.items() if not r.ok}
    accepted = {t: r for t, ((_, r),) in results.items() if r.ok}
    assert all(len(v) == 1 for v in results.values()), "every task answered exactly once"
    assert len(accepted) + len(refused) == offered and refused and accepted
    assert {r.error for r in refused.values()} == {f"queue full ({cap} tasks)"}
    assert all(r.secret == f"{int(t.rsplit('/', 1)[1]):032x}" for t, r in {**accepted, **refused}.items())
    assert depths and max(depths) <= cap, f"the queue stayed within its cap: max {max(depths)}"
    refusal_delay = max(results[t][0][0] - sent[t] for t in refused)
    reliability(scenario=f"burst: {offered} tasks in 5 s to one board with max_queue={cap}", trials=offered,
                lost=offered - len(results), duplicated=sum(len(v) > 1 for v in results.values()), recovered=0,
                recover_s=None, figure=f"{len(accepted)} done + {len(refused)} refused = {offered}; "
                                       f"refusals within {refusal_delay:.2f} s; max queue {max(depths)}")


def test_ten_thousand_malformed_messages_are_counted_and_cost_no_memory(tmp_path, reliability):
    count = 10_000
    with running_mesh(tmp_path, 1, engine="fake", fake_seconds=0.01) as (board,):
        before = wait_for_status(board, board.device, lambda s: s.online)
        agent = psutil.Process(board.agent_pid)
        rss_before = agent.memory_info().rss
        raw = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bad-input")
        raw.connect(board.host, board.port)
        raw.loop_start()
        try:
            for topic, payload in bad_messages(board.device, count, seed=7):
                raw.publish(topic, payload, qos=1).wait_for_publish(10)
        finally:
            raw.loop_stop()
            raw.disconnect()
        after = wait_for_status(board, board.device, lambda s: s.rejected >= before.rejected + count, timeout_s=120)
        grown_mb = (agent.memory_info().rss - rss_before) / 2**20
        assert agent.is_running() and after.rejected == before.rejected + count
        assert grown_mb < 10, f"the agent grew {grown_mb:.1f} MB"
        reliability(scenario=f"bad input: {count} malformed messages on the task, result and submit topics",
                    trials=count, lost=0, duplicated=0, recovered=0, recover_s=None,
                    figure=f"all {count} counted, agent up, RSS +{grown_mb:.1f} MB (< 10 MB)")


def restart_broker(device) -> subprocess.Popen[bytes]:
    """Start a device's broker again from its configuration; return once it listens."""
    home = Path(device.directory)
    broker = subprocess.Popen(["mosquitto", "-c", str(home / "mosquitto.conf")], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    localmesh.wait_port(device.host, device.port, broker, home / "broker" / "mosquitto.log")
    return broker


def kill_unsaved(device) -> None:
    """SIGKILL a device's broker and drop what it saved: a power cut before its next autosave."""
    os.kill(device.broker_pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(device.broker_pid)], timeout=10)
    (Path(device.directory) / "broker" / "mosquitto.db").unlink(missing_ok=True)


def test_brokers_killed_with_results_in_flight_lose_none_the_stores_send_them_again(tmp_path, reliability):
    with running_mesh(tmp_path, 3, engine="fake", fake_seconds=2.0) as mesh:
        origin, peer = mesh[0], mesh[1]
        killed = threading.Event()
        restarted: list[subprocess.Popen[bytes]] = []

        def kill_origin_broker(p: Progress) -> None:
            # Layer 1 is out: with the origin's broker gone, the peers' results wait in their own
            # brokers' bridge queues, in memory.
            if p.event == "dispatched" and p.layer == 1 and not killed.is_set():
                killed.set()
                kill_unsaved(origin)

        answers = []
        with client_for(origin) as client:
            asking = threading.Thread(target=lambda: answers.append(
                client.submit("Where do rivers begin?", 1, 2, timeout_s=120, on_progress=kill_origin_broker)))
            asking.start()
            try:
                assert killed.wait(30)
                wait_for_status(peer, peer.device, lambda s: s.completed >= 1)  # its result waits in its broker
                kill_unsaved(peer)
                killed_at = time.monotonic()
            finally:
                restarted += [restart_broker(origin), restart_broker(peer)]
            asking.join(120)
            recover_s = time.monotonic() - killed_at
        for broker in restarted:
            broker.kill()
            broker.wait(10)
    (answer,) = answers
    assert answer.ok and not answer.degraded, answer.notes
    assert sorted(i.device for i in answer.inferences if i.layer == 1) == ["edge-1", "edge-2", "edge-3"]
    assert not [n for n in answer.notes if peer.device in n], "no deadline missed, nothing sent elsewhere"
    reliability(scenario="the origin's and a peer's brokers SIGKILLed, unsaved, with results in flight",
                trials=1, lost=0, duplicated=0, recovered=0, recover_s=recover_s,
                figure=f"the results sent again from the agents' stores; job done {recover_s:.1f} s after the "
                       "kill, not degraded")


def test_a_peers_broker_restarted_ten_times_under_load_loses_nothing(tmp_path, reliability):
    layers, proposers, restarts = 1, 2, 10
    with running_mesh(tmp_path, 3, engine="fake", fake_seconds=0.2) as mesh:
        peer = mesh[1]
        recorder = Recorder(mesh[0])
        brokers: list[subprocess.Popen[bytes]] = []
        pid = peer.broker_pid
        try:
            for n in range(restarts):
                for m in range(3):  # load on every origin between restarts
                    recorder.offer(mesh[(n + m) % 3].device, f"prompt {n}.{m}", layers, proposers)
                os.kill(pid, signal.SIGTERM)  # as systemctl restart does
                psutil.wait_procs([psutil.Process(pid)], timeout=10)
                restarted_at = time.time()
                brokers.append(restart_broker(peer))
                pid = brokers[-1].pid
                # The agent is back on its broker once it publishes there again.
                wait_for_status(peer, peer.device, lambda s, t=restarted_at: s.online and s.ts >= t)
            last_restart = time.monotonic()
            probe = recorder.offer(peer.device, "after the last restart", layers, proposers)
            assert recorder.wait_all_answered(120), "every acknowledged prompt was answered"
            recover_s = probe.answers[0][0] - last_restart
        finally:
            recorder.close()
            for broker in brokers:
                broker.terminate()
                broker.wait(10)
        verdict = check(recorder, stores(mesh))
    reliability(scenario=f"a peer's broker restarted {restarts} times under load (M={layers}, k={proposers})",
                trials=verdict.offered, lost=len(verdict.lost), duplicated=len(verdict.duplicated),
                recovered=len(verdict.recovered), recover_s=recover_s,
                figure=f"a prompt at that peer answered {recover_s:.1f} s after the last restart (≤ 60 s)")
    assert verdict.valid, verdict.summary()
    assert verdict.answered == verdict.offered and not verdict.refused
    assert recover_s <= 60


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about ten minutes of inferences on two cores
def test_soak_a_thousand_prompts_on_the_real_model_leaks_neither_memory_nor_files(tmp_path, reliability,
                                                                                    model_ready):
    prompts, warm = 1000, 50
    with running_mesh(tmp_path, 1, max_tokens=16) as (board,):
        agent = psutil.Process(board.agent_pid)
        # The model worker; multiprocessing's resource tracker is the agent's other child.
        (worker,) = [c for c in agent.children() if "resource_tracker" not in " ".join(c.cmdline())]

        def usage() -> tuple[int, int, int, int]:
            fds = agent.num_fds() + worker.num_fds()
            return worker.memory_info().rss, fds, agent.num_threads(), worker.num_threads()

        recorder = Recorder(board)
        try:
            for n in range(prompts):
                op = recorder.offer(board.device, f"Name a colour ({n}).", 0, 0)
                assert recorder.wait_all_answered(60), f"prompt {n} was answered"
                assert op.answers[0][1].ok, op.answers[0][1].error
                if n + 1 == warm:
                    after_warmup = usage()
            at_end = usage()
        finally:
            recorder.close()
        verdict = check(recorder, stores([board]))
    grown_mb = (at_end[0] - after_warmup[0]) / 2**20
    reliability(scenario=f"soak: {prompts} prompts on the real model, one board", trials=prompts,
                lost=len(verdict.lost), duplicated=len(verdict.duplicated), recovered=len(verdict.recovered),
                recover_s=None, figure=f"worker RSS +{grown_mb:.1f} MB after the first {warm} (< 50 MB); "
                                       f"fds {after_warmup[1]}→{at_end[1]}, threads {after_warmup[2:]}→{at_end[2:]}")
    assert verdict.valid and verdict.answered == prompts, verdict.summary()
    assert grown_mb < 50
    assert abs(at_end[1] - after_warmup[1]) <= 2 and at_end[2:] == after_warmup[2:]


def test_a_submit_the_broker_acknowledged_but_lost_before_the_agent_had_it_is_sent_again(tmp_path, reliability):
    with running_mesh(tmp_path, 1, engine="fake", fake_seconds=0.1) as (board,):
        seen = threading.Event()
        witness = MeshClient(observer_id("witness"), BrokerAddress(board.host, board.port))
        witness.route(topics.submit(board.device), lambda message: seen.set())
        witness.connect()
        answers: list = []
        accepted = threading.Event()
        broker = None
        with client_for(board) as client:
            agent = psutil.Process(board.agent_pid)
            agent.suspend()  # frozen, still online: the submit only reaches its socket's buffer
            asking = threading.Thread(target=lambda: answers.append(client.submit(
                "Why is the sky blue?", 0, 0, timeout_s=90,
                on_progress=lambda p: p.event == "accepted" and accepted.set())))
            try:
                asking.start()
                assert seen.wait(30), "the broker never had the submit"
                witness.close()
                # A power cut: the agent dies with the submit unread, its broker before saving it.
                os.killpg(board.agent_pid, signal.SIGKILL)
                psutil.wait_procs([agent], timeout=10)
                kill_unsaved(board)
                broker = restart_broker(board)
                restarted = localmesh.start_agent(Path(board.directory))
                localmesh.update_agent_pid(tmp_path, board.device, restarted.pid)
                assert accepted.wait(60), "the origin never accepted the job"
                asking.join(90)
            finally:
                if broker is not None:
                    broker.kill()
                    broker.wait(10)
    (answer,) = answers
    assert answer.ok
    reliability(scenario="a submit acknowledged by the broker and lost in a power cut before the agent had it",
                trials=1, lost=0, duplicated=0, recovered=0, recover_s=None,
                figure="the client published it again until the origin accepted it; answered once")
