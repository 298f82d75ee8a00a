"""The fault matrix on lab boards (issue #10): a whole board's power cut, a peer rebooted mid-layer,
one board partitioned for a minute under load, lossy and slow links. The agents, brokers and
bridges are the ones site.yml deployed; only the engine is the agent's fake one (EDGE_AGENT_ENGINE=
fake in a systemd drop-in), so that a job takes a known time and the load fits in minutes.

Every prompt goes through tests/support/history.py's Recorder: a client of one board's own broker,
logged in as that board, from inside its network namespace. Afterwards every board's store is
read from its overlay, so an aggregation done twice is caught even if the client saw one answer."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from labharness import BOARDS, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from support.history import Recorder, Verdict, check

from edge_agent.wire import topics
from edge_agent.wire.messages import Result, decode
from lab import faults
from lab.boards import Board
from lab.host import inside_netns
from lab.lab import Lab
from lab.paths import OUT

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(1800)]

FAKE_SECONDS = 1.0
"""What one inference takes on the boards' fake engine."""
DROPIN = "/etc/systemd/system/edge-agent.service.d/lab-faults.conf"
STORE = Path("var/lib/edge-agent/agent.db")
BRIDGE_PORT = 8883
PEER_STALE_S = 10.0
"""The agent's default peer_stale_s: a peer unheard this long counts as offline."""


def password(device: str) -> str:
    return (OUT / "pki" / "passwords" / device).read_text().strip()


def board(lab: Lab, name: str) -> Board:
    return next(b for b in lab.boards if b.name == name)



def set_engine(lab: Lab, name: str, seconds: float | None) -> None:
    """The board's agent on the fake engine (an inference takes `seconds`), or back on its model."""
    if seconds is None:
        script = f"rm -f {DROPIN}"
    else:
        script = (f"mkdir -p {Path(DROPIN).parent} && printf '[Service]\\nEnvironment=EDGE_AGENT_ENGINE=fake\\n"
                  f"Environment=EDGE_AGENT_FAKE_SECONDS={seconds}\\n' > {DROPIN}")
    # The broker and the API started too: the teardown test stops every service.
    done = lab.ssh(name, "sudo", "sh", "-c", f"{script} && systemctl daemon-reload && systemctl start "
                   "edge-mosquitto && systemctl restart edge-agent && systemctl start edge-agent-api", timeout=120)
    assert done.returncode == 0, done.stderr


def online_at(lab: Lab, where: str) -> set[str]:
    """The devices `edge-agent status` on board `where` shows online."""
    shown = lab.ssh(where, "sudo", "/opt/edge-agent/venv/bin/edge-agent", "status", "--json", "--username", where,
                    "--password-file", "/etc/edge-agent/broker.password", timeout=30)
    if shown.returncode != 0:
        return set()
    return {row["device"] for row in json.loads(shown.stdout) if row["online"]}


def mesh_whole(lab: Lab, timeout_s: float = 120) -> bool:
    return bool(wait_until(lambda: all(online_at(lab, b) == set(BOARDS) for b in BOARDS), timeout_s, 1.0))


@pytest.fixture(scope="module")
def fake_mesh(first_play: object, lab: Lab) -> Iterator[Lab]:
    """The deployed mesh with the fake engine on every board (services started: an earlier test may
    have run the teardown); the model back however the module ends."""
    try:
        for name in BOARDS:
            set_engine(lab, name, FAKE_SECONDS)
        assert mesh_whole(lab), "the three boards did not see each other online"
        yield lab
    finally:
        for name in BOARDS:
            set_engine(lab, name, None)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    device: str


@contextlib.contextmanager
def recorder_on(lab: Lab, name: str) -> Iterator[Recorder]:
    """A Recorder on board `name`'s own broker (its plain listener, on the board's loopback)."""
    ns = board(lab, name).ns
    recorder = Recorder(Endpoint("127.0.0.1", 1883, name), username=name, password=password(name),
                        where=lambda: inside_netns(ns))
    try:
        yield recorder
    finally:
        recorder.close()


def store_of(lab: Lab, name: str) -> Path:
    return board(lab, name).root / STORE


def snapshot(lab: Lab, folder: Path) -> list[Path]:
    """A consistent copy of every board's store (SQLite's online backup, through the overlay)."""
    copies = []
    for name in BOARDS:
        copy = folder / f"{name}.db"
        copy.unlink(missing_ok=True)
        source = sqlite3.connect(f"file:{store_of(lab, name)}?mode=ro", uri=True, timeout=30)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        copies.append(copy)
    return copies


def integrity(lab: Lab, name: str, folder: Path, job_id: str) -> tuple[str, bool]:
    """PRAGMA integrity_check of the board's store as its disk holds it now (the board is off), and
    whether the job is in it: on a copy of the database and its write-ahead log, so the board
    itself boots on what it left."""
    source = store_of(lab, name)
    for suffix in ("", "-wal"):
        path = Path(f"{source}{suffix}")
        target = folder / f"cut{suffix}"
        target.unlink(missing_ok=True)
        if path.exists():
            target.write_bytes(path.read_bytes())
    (folder / "cut-shm").unlink(missing_ok=True)
    db = sqlite3.connect(folder / "cut")
    try:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        return verdict, bool(db.execute("SELECT 1 FROM jobs WHERE job_id=?", (job_id,)).fetchall())
    finally:
        db.close()


def query(lab: Lab, name: str, sql: str, *args: object) -> list[tuple]:
    """Rows of a read-only query on board `name`'s live store."""
    db = sqlite3.connect(f"file:{store_of(lab, name)}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def running_for_others(lab: Lab, name: str) -> set[str]:
    """Tasks board `name` is running now that another board dispatched to it."""
    running = {row[0] for row in query(lab, name, "SELECT task_id FROM inbox WHERE state='running'")}
    if not running:
        return set()
    sent = set()
    for origin in BOARDS:
        if origin != name:
            sent |= {row[0] for row in query(lab, origin, "SELECT task_id FROM dispatches WHERE device=?", name)}
    return running & sent


def verdict_of(recorder: Recorder, lab: Lab, folder: Path) -> Verdict:
    return check(recorder, snapshot(lab, folder))


class Load:
    """Offers a prompt every `every_s` seconds, in turn at each origin, until stopped."""

    def __init__(self, recorder: Recorder, origins: tuple[str, ...], every_s: float) -> None:
        self.recorder, self.origins, self.every_s = recorder, origins, every_s
        self.offered: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            origin = self.origins[n % len(self.origins)]
            op = self.recorder.offer(origin, f"Load prompt {n}: name a river.", 1, 2)
            self.offered.append((op.invoked, origin, op.job_id))
            n += 1
            self._stop.wait(self.every_s)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


class ResultWitness:
    """Every task result that reaches board `name`'s broker, with when it came (monotonic)."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.results: list[tuple[float, Result]] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                   client_id=f"witness-{name}-{random.getrandbits(32):08x}")
        self._client.username_pw_set(name, password(name))
        self._client.on_message = self._on_result
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        with inside_netns(board(lab, name).ns):
            self._client.connect("127.0.0.1", 1883)
        self._client.loop_start()
        self._client.subscribe(topics.result(name), 1)
        assert self._subscribed.wait(10), f"could not subscribe to results on {name}'s broker"

    def _on_result(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            self.results.append((time.monotonic(), decode(message.payload, Result)))
        except Exception:  # a message that is no result is not this witness's business
            pass

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@contextlib.contextmanager
def powered_on_at_exit(lab: Lab, victim: Board) -> Iterator[None]:
    """However the block ends, the board is left running for the tests after it."""
    try:
        yield
    finally:
        if not victim.running():
            faults.power_on(victim, lab.ssh_config)


@pytest.mark.parametrize("cuts", [pytest.param(3, id="3-cuts"), pytest.param(10, id="10-cuts", marks=pytest.mark.slow)])
def test_power_cuts_of_the_origin_board_answer_every_prompt_once_and_never_damage_its_store(
        fake_mesh: Lab, reliability, tmp_path: Path, cuts: int) -> None:
    """board-1, the origin of every job, has its power cut (every process SIGKILLed at once) at a
    random moment of a job's life, then boots again. The client is on board-2.

    The submit is acknowledged by board-2's broker; its bridge hands it to board-1's broker, which
    acknowledges it before its agent has it. A cut in that window loses it with board-1's broker,
    which saves its messages only every autosave interval (found by this test; see
    docs/reliability.md): the client publishes it again until the origin accepts it. Jobs the
    origin's store held at the cut and jobs still in a broker are counted apart; none may be lost."""
    lab, victim = fake_mesh, board(fake_mesh, "board-1")
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    checks: list[str] = []
    recover: list[float] = []
    moments: list[float] = []
    committed: list[str] = []
    in_flight: list[str] = []
    with recorder_on(lab, "board-2") as recorder, powered_on_at_exit(lab, victim):
        probe = recorder.offer("board-1", "How long does a job live?", 1, 2)
        assert probe.acked and recorder.wait_all_answered(120), "control: a job at board-1 is answered"
        life = probe.answers[0][0] - probe.invoked
        for trial in range(cuts):
            op = recorder.offer("board-1", f"Power cut {trial}: name a mountain.", 1, 2)
            assert op.acked, "board-2's broker acknowledged the submit"
            moment = rng.uniform(0, life)
            moments.append(moment)
            # The moment of the cut is the point of the trial: chosen at random, not an event to wait for.
            time.sleep(max(0.0, op.invoked + moment - time.monotonic()))
            faults.power_cut(victim)
            check_, held = integrity(lab, "board-1", tmp_path, op.job_id)
            checks.append(check_)
            (committed if held else in_flight).append(op.job_id)
            began = time.monotonic()
            faults.power_on(victim, lab.ssh_config)
            answered = recorder.wait_answered([op.job_id], 300)
            assert answered, f"trial {trial} (seed {seed}): an acknowledged job was not answered ({held=})"
            recover.append(max(0.0, op.answers[0][0] - began))
        verdict = verdict_of(recorder, lab, tmp_path)
    lost_committed = sorted(set(verdict.lost) & set(committed))
    lost_in_flight = sorted(set(verdict.lost) & set(in_flight))
    reliability(scenario=f"power cut of the origin board (SIGKILL of the whole board) at {cuts} random moments "
                         "of a job, then booted again", trials=cuts, lost=len(verdict.lost),
                duplicated=len(verdict.duplicated), recovered=len(verdict.recovered), recover_s=max(recover),
                figure=f"integrity_check ok {checks.count('ok')}/{cuts}; of {len(committed)} jobs in the origin's "
                       f"store at the cut, {len(lost_committed)} lost; of {len(in_flight)} not yet there (sent "
                       f"again by the client), {len(lost_in_flight)} lost; job life {life:.1f} s, answered "
                       f"at most {max(recover):.1f} s after the boot")
    assert checks == ["ok"] * cuts, f"seed {seed}: {checks}"
    assert not verdict.lost, f"seed {seed}, moments {moments}: {verdict.summary()}"
    assert not (verdict.duplicated or verdict.unexpected), f"seed {seed}: {verdict.summary()}"
    assert all(op.answers[0][1].ok for op in recorder.ops.values() if op.answers), [
        op.answers[0][1].error for op in recorder.ops.values() if op.answers]


def test_a_peer_rebooted_mid_layer_leaves_the_prompt_answered_once(fake_mesh: Lab, reliability, tmp_path: Path) -> None:
    """board-3 holds a layer-1 task of a job whose origin is board-1 and is rebooted
    (`systemctl reboot`). Its engine is slowed for this test so the task is still running then."""
    lab = fake_mesh
    set_engine(lab, "board-3", 10 * FAKE_SECONDS)
    try:
        assert mesh_whole(lab), "board-3 back in the mesh after its agent's restart"
        booted = lab.ssh("board-3", "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()
        with recorder_on(lab, "board-1") as recorder:
            for attempt in range(6):
                op = recorder.offer("board-1", f"Reboot {attempt}: name a bird.", 1, 2)
                assert op.acked
                sent = wait_until(lambda op=op: query(lab, "board-1", "SELECT device, state FROM dispatches "
                                                      "WHERE job_id=? AND layer=1", op.job_id), 30, 0.2)
                if ("board-3", "pending") in (sent or []):
                    break
                assert recorder.wait_all_answered(120)  # board-3 not chosen: the next prompt
            else:
                pytest.fail("board-3 was given no task in 6 prompts")
            (task_id,) = [t for (t,) in query(lab, "board-1", "SELECT task_id FROM dispatches WHERE job_id=? AND "
                                                "device='board-3' AND layer=1", op.job_id)]
            began = time.monotonic()
            lab.ssh("board-3", "sudo", "systemctl", "reboot", timeout=30)
            # board-3 came back: a new boot id. (ps's lstart of PID 1 has a one-second grain.)
            back = wait_until(lambda: (lambda s: s if s and s != booted else "")(
                lab.ssh("board-3", "cat", "/proc/sys/kernel/random/boot_id", timeout=15).stdout.strip()), 180)
            assert back, "board-3 did not come back from its reboot"
            assert recorder.wait_all_answered(300), "the prompt was not answered"
            answered_s = op.answers[0][0] - began
            rejoined = mesh_whole(lab)
            rejoined_s = time.monotonic() - began
            verdict = verdict_of(recorder, lab, tmp_path)
            answer = op.answers[0][1]
            # The agent's shutdown interrupted the task: requeued for the next start, not dead-lettered.
            lettered = query(lab, "board-3", "SELECT reason FROM dead_letters WHERE "
                             "instr(CAST(payload AS TEXT), ?) > 0", task_id)
    finally:
        set_engine(lab, "board-3", FAKE_SECONDS)
    reliability(scenario="a peer rebooted (systemctl reboot) while it held a layer-1 task of another board's job",
                trials=1, lost=len(verdict.lost), duplicated=len(verdict.duplicated),
                recovered=len(verdict.recovered), recover_s=rejoined_s,
                figure=f"answered {answered_s:.1f} s after the reboot ({'; '.join(answer.notes) or 'no notes'}); "
                       f"board-3 back in the mesh after {rejoined_s:.1f} s")
    assert rejoined, "board-3 did not rejoin the mesh"
    assert not lettered, f"board-3 dead-lettered the task its reboot interrupted: {lettered}"
    assert verdict.valid and verdict.answered == verdict.offered, verdict.summary()
    assert answer.ok, answer.error


def test_one_board_partitioned_for_a_minute_under_load_loses_nothing_and_rejoins(
        fake_mesh: Lab, reliability, tmp_path: Path) -> None:
    """board-3's link is pulled out of the bridge for 60 s while prompts arrive at all three boards.

    Its peers must see it gone within their own deadline (no last will can reach them, and the
    bridges' keepalive is no part of it): prompts at board-1 and board-2 are answered during the
    partition. Prompts addressed to board-3 wait in the bridges and are answered after it. Results
    board-3 computed while cut off arrive late, after the heal, and are discarded."""
    lab, victim = fake_mesh, board(fake_mesh, "board-3")
    partition_s = 60.0
    witnesses = [ResultWitness(lab, name) for name in ("board-1", "board-2")]
    try:
        with recorder_on(lab, "board-1") as recorder:
            with Load(recorder, BOARDS, every_s=3.0) as load:
                # Cut while board-3 runs a task of another board's job: its result will come late.
                held = wait_until(lambda: running_for_others(lab, "board-3"), 60, 0.1)
                assert held, "board-3 ran no task of another board in a minute of load"
                cut = time.monotonic()
                with faults.unplugged(victim):
                    assert not faults.link_up(victim)
                    # The partition's length is the scenario's: a fixed time, not an event.
                    time.sleep(max(0.0, cut + partition_s - time.monotonic()))
                    during = [(t, o, j) for t, o, j in load.offered if t >= cut and o != "board-3"]
                    answered_during = {j for _, _, j in during if recorder.ops[j].answers}
                healed = time.monotonic()
                assert faults.link_up(victim)
                rejoined = wait_until(lambda: "board-3" in online_at(lab, "board-1")
                                      and "board-1" in online_at(lab, "board-3"), 120, 0.5)
                rejoin_s = time.monotonic() - healed
            assert recorder.wait_all_answered(240), "some acknowledged prompts were never answered"
            verdict = verdict_of(recorder, lab, tmp_path)
            ops = dict(recorder.ops)
    finally:
        for witness in witnesses:
            witness.close()
    # Jobs at board-1/2 offered in the first 40 s of the partition had 20 s left to finish in it.
    early = [j for t, _, j in during if t <= cut + partition_s - 20]
    slowest_during = max((ops[j].answers[0][0] - ops[j].invoked for j in early), default=0.0)
    late = []
    for name, witness in zip(("board-1", "board-2"), witnesses, strict=True):
        for arrived, result in witness.results:
            state = query(lab, name, "SELECT state FROM dispatches WHERE task_id=?", result.task_id)
            if result.device == "board-3" and arrived >= healed and state == [("abandoned",)]:
                late.append(result.task_id)
    to_board3 = [j for _, o, j in load.offered if o == "board-3"]
    reliability(scenario="one board partitioned for 60 s (its link down) under load at all three boards",
                trials=verdict.offered, lost=len(verdict.lost), duplicated=len(verdict.duplicated),
                recovered=len(verdict.recovered), recover_s=rejoin_s,
                figure=f"{len(answered_during)}/{len(during)} prompts at the other boards answered during the "
                       f"partition (slowest {slowest_during:.1f} s, peer_stale_s {PEER_STALE_S:.0f} s, task "
                       f"deadline 120 s); {len(to_board3)} prompts at board-3 answered after it; {len(late)} late "
                       f"result(s) from board-3 discarded; back in the mesh {rejoin_s:.1f} s after the heal")
    assert rejoined, "board-3 did not rejoin the mesh within 120 s of the heal"
    assert verdict.valid and verdict.answered == verdict.offered, verdict.summary()
    assert set(early) <= answered_during, "prompts at the other boards waited for the partitioned board"
    assert late, "no result of board-3's came back after the heal: the late-answer case was not exercised"


@pytest.mark.parametrize("seconds", [pytest.param(45, id="45s"), pytest.param(300, id="5min", marks=pytest.mark.slow)])
def test_lossy_slow_links_lose_and_duplicate_nothing(fake_mesh: Lab, reliability, tmp_path: Path,
                                                     seconds: int) -> None:
    """20 % of the bridges' packets dropped and 50 +- 10 ms added each way on every board's links
    (lab/faults.py says how, without netem), while prompts arrive at all three boards."""
    lab = fake_mesh
    with recorder_on(lab, "board-1") as before:
        for n, origin in enumerate(BOARDS):
            before.offer(origin, f"Baseline {n}: name a lake.", 1, 2)
        assert before.wait_all_answered(120), "control: the baseline prompts are answered"
        baseline = max(op.answers[0][0] - op.invoked for op in before.ops.values())
    with contextlib.ExitStack() as stack:
        relays = [stack.enter_context(faults.lossy(b, BRIDGE_PORT, 20, delay_ms=50, jitter_ms=10))
                  for b in lab.boards]
        # The relay takes new connections: the brokers restart so that every bridge goes through it.
        # (Before the Recorder connects: its client would reconnect outside the board's namespace.)
        for name in BOARDS:
            restarted = lab.ssh(name, "sudo", "systemctl", "restart", "edge-mosquitto", timeout=60)
            assert restarted.returncode == 0, restarted.stderr
        assert mesh_whole(lab, 180), "the mesh did not form again over the lossy links"
        with recorder_on(lab, "board-1") as recorder:
            began = time.monotonic()
            with Load(recorder, BOARDS, every_s=3.0):
                # The load's length is the scenario's: a fixed time, not an event.
                time.sleep(max(0.0, began + seconds - time.monotonic()))
            answered = recorder.wait_all_answered(300)
            drops = {b.name: faults.counters(b).get("drop", 0) for b in lab.boards}
            verdict = verdict_of(recorder, lab, tmp_path)
    loaded = [op for op in recorder.ops.values() if op.invoked >= began and op.answers]
    latencies = sorted(op.answers[0][0] - op.invoked for op in loaded)
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
    delays = [d for r in relays if r for d in r.delays]
    reliability(scenario=f"lossy links: 20 % of bridge packets dropped, 50 ± 10 ms each way, {seconds} s of load",
                trials=verdict.offered, lost=len(verdict.lost), duplicated=len(verdict.duplicated),
                recovered=len(verdict.recovered), recover_s=None,
                figure=f"{sum(drops.values())} packets dropped; p95 answer {p95:.1f} s (3 prompts at once "
                       f"before the fault: slowest {baseline:.1f} s); relayed chunks held "
                       f"{min(delays) * 1000:.0f}-{max(delays) * 1000:.0f} ms")
    assert answered, verdict.summary()
    assert verdict.valid and verdict.answered == verdict.offered, verdict.summary()
    assert all(n > 0 for n in drops.values()), f"control: packets were dropped on every board {drops}"
    assert all(r and r.connections >= 2 for r in relays), "control: every board's bridges went through its relay"
    assert 0.040 <= min(delays) and max(delays) <= 0.060
