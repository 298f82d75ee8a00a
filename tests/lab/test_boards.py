"""site.yml on three systemd boards of the lab, over SSH, with the real model: the whole play
and its health check, the hub topology on a RabbitMQ cluster and back, a second run that
changes nothing, a prompt typed on a board, the wheel built once per kind of board, the broker's
walls seen from the boards' network, a reboot, and the teardown. The tests run in file order
and share one lab and one first run."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from labharness import BOARDS, BUILD_TASK, INSTALL_TASK, Play, task_hosts, wait_until, wheels
from labhub import lab_hub
from mqttpeer import Peer

from edge_agent.ops import hubconf
from lab.boards import ssh_argv
from lab.host import inside_netns
from lab.lab import Lab
from lab.paths import BRIDGE_NS, OUT, board_address

pytestmark = [pytest.mark.lab, pytest.mark.integration, pytest.mark.timeout(1800)]

NS = "dmoa/v1"
ADDRESS = {name: board_address(i) for i, name in enumerate(BOARDS, start=1)}
AGENT = "/opt/edge-agent/venv/bin/edge-agent"


def agent(board: str, command: str, *args: str) -> list[str]:
    """edge-agent as typed on the board's terminal, logged in on its broker as the board's device."""
    return ["sudo", AGENT, command, "--username", board, "--password-file", "/etc/edge-agent/broker.password", *args]
PKI = OUT / "pki"


def password(device: str) -> str:
    return (PKI / "passwords" / device).read_text().strip()


def tls(device: str) -> dict[str, Path]:
    return {"ca": PKI / "ca.crt", "cert": PKI / f"{device}.crt", "key": PKI / f"{device}.key"}


SERVICES = ("edge-mosquitto", "edge-agent", "edge-agent-api")
"""What the play runs on every board: the broker, the agent and the OpenAI-compatible API."""


def main_pids(lab: Lab) -> dict[str, str]:
    pids = {}
    for board in BOARDS:
        shown = lab.ssh(board, "systemctl", "show", "-p", "MainPID", "--value", *SERVICES)
        pids[board] = shown.stdout.split()
    return pids



def test_the_play_provisions_three_boards_and_its_health_check_passes(first_play):
    totals = first_play.recap()
    assert set(totals) == set(BOARDS), first_play.output[-3000:]
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0 for r in totals.values())
    found = re.search(r"Board board-1: answered in [0-9.]+ s by ([a-z0-9, -]+)", " ".join(first_play.output.split()))
    assert found, first_play.output[-3000:]
    assert sorted(found.group(1).split(", ")) == list(BOARDS)
    assert "Board board-1: the API answered a chat completion made with its key." in " ".join(
        first_play.output.split()), first_play.output[-3000:]


def test_the_wheel_is_built_once_for_the_three_boards(first_play, lab):
    installed = {}
    for board in BOARDS:
        listed = lab.ssh(board, "sh", "-c", "sha256sum /opt/edge-agent/venv/wheels/*", timeout=30).stdout.split()
        assert len(listed) == 2, f"{board} should hold exactly the wheel it installed: {listed}"
        installed[board] = listed[0]
    assert len(set(installed.values())) == 1, f"the boards installed different wheels: {installed}"
    digest = installed["board-1"]
    kinds = [kind for kind, files in wheels().items() if any(sha256(f) == digest for f in files)]
    assert len(kinds) == 1, "the installed wheel is not in one kind's folder of the control node's wheel cache"
    builders = task_hosts(first_play.output, BUILD_TASK)
    if any(sha256(f) == digest for f in first_play.wheels_before.get(kinds[0], [])):
        assert builders == [], "the control node had this kind's wheel: no board should build it"
    else:
        assert builders == ["board-1"], f"built on {builders}, want the first board of the kind only"
    assert task_hosts(first_play.output, INSTALL_TASK) == list(BOARDS)
    # Only a board that built the wheel carries the compilers.
    compilers = {board: lab.ssh(board, "sh", "-c", "command -v cmake gcc || true", timeout=30).stdout.split()
                 for board in BOARDS}
    assert {b: bool(found) for b, found in compilers.items()} == {b: b in builders for b in BOARDS}, compilers
    second = first_play.duration("board-2", INSTALL_TASK)
    assert second is not None and second < 60, f"board-2 took {second} s to install the wheel"


def hub_password(device: str) -> str:
    return (PKI / "hub" / "passwords" / device).read_text().strip()


def test_the_hub_topology_answers_through_a_tls_cluster_and_the_full_mesh_comes_back(first_play, lab, tmp_path,
                                                                                      peers):
    """The mesh role alone re-run with edge_mesh_topology=hub on the running boards, against a
    3-node RabbitMQ cluster on the boards' network (TLS, client certificates); then the play's health
    check for the hub, an M=2 prompt, the cluster's walls; then the full mesh again, which the next
    test's run that changes nothing confirms."""
    timings: dict[str, float] = {}

    def timed(name: str, play: Play) -> Play:
        timings[name] = round(play.seconds, 1)
        return play
    began = time.monotonic()
    restored = None
    try:
        with lab_hub(tmp_path / "hub", PKI / "ca.crt") as hub:
            hubvars = json.dumps({"edge_mesh_topology": "hub", "edge_hub_brokers": hub.brokers,
                                  "edge_hub_ca_file": str(hub.ca), "edge_hub_client_cert": True})
            # The boards' side, while the cluster starts.
            mesh = timed("mesh role, hub", Play.start(lab, "--tags", "mesh", "-e", hubvars, timeout=600))
            assert mesh.result.returncode == 0, mesh.output[-6000:] + mesh.result.stderr[-2000:]
            hub.wait(300)
            timings["cluster ready"] = round(time.monotonic() - began, 1)
            # The cluster's side: the users and permissions the play wrote, rendered by the same generator.
            definitions = PKI / "hub" / "definitions.json"
            assert definitions.read_text() == hubconf.render_definitions({b: hub_password(b) for b in BOARDS})
            hub.ctl("import_definitions", str(definitions))
            health = timed("health, hub", Play.start(lab, "--tags", "health", "-e", hubvars, timeout=600))
            assert health.result.returncode == 0, health.output[-6000:] + health.result.stderr[-2000:]
            said = " ".join(health.output.split())
            for board in BOARDS:
                assert f"Board {board}: its bridge to the cluster is connected." in said, said[-3000:]
            found = re.search(r"Board board-1: answered in [0-9.]+ s by ([a-z0-9, -]+)", said)
            assert found and sorted(found.group(1).split(", ")) == list(BOARDS), said[-3000:]
            # The only way between boards is the cluster: one bridge each, no listener for peers.
            for board in BOARDS:
                conf = lab.ssh(board, "sudo", "grep", "-c", "^connection ", "/etc/mosquitto/dmoa/mosquitto.conf")
                assert conf.stdout.strip() == "1", conf.stdout + conf.stderr
            bridges = hub.ctl("list_mqtt_connections", "client_id", "user", "--formatter", "json")
            assert sorted((c["client_id"], c["user"]) for c in json.loads(bridges)) == \
                [(f"{b}.hub", b) for b in BOARDS]
            typed = lab.ssh("board-2", *agent("board-2", "submit", "--json", "--quiet", "--layers", "2",
                                              "--proposers", "2", "--timeout", "240", "Name a colour of the sea."),
                            timeout=300)
            assert typed.returncode == 0, typed.stdout + typed.stderr
            answer = json.loads(typed.stdout)
            assert answer["ok"] and answer["answer"].strip() and (answer["layers"], answer["proposers"]) == (2, 2)
            assert {i["device"] for i in answer["inferences"]} == set(BOARDS)
            hub_walls(hub, peers)
        restored = timed("mesh role, full again", Play.start(lab, "--tags", "mesh", timeout=600))
        assert restored.result.returncode == 0, restored.output[-6000:]
    finally:
        if restored is None:  # whatever failed above, leave the full mesh the next tests expect
            Play.start(lab, "--tags", "mesh", timeout=600)
    timings["total"] = round(time.monotonic() - began, 1)
    print(f"hub topology lab test, seconds: {timings}")
    for board in BOARDS:
        conf = lab.ssh(board, "sudo", "grep", "-c", "^connection ", "/etc/mosquitto/dmoa/mosquitto.conf")
        assert conf.stdout.strip() == str(len(BOARDS) - 1), "the full mesh's bridges are back"


def hub_walls(hub, peers) -> None:
    """board-1's login on the cluster (its password, its certificate) reads its own tasks and publishes
    as itself; the cluster closes its connection when it asks for board-2's tasks or publishes as board-2."""
    def login(device: str, name: str) -> Peer:
        files = {"ca": hub.ca, "cert": PKI / f"{device}.crt", "key": PKI / f"{device}.key"}
        return peers(node, 8883, device, hub_password(device), client_id=f"{device}.{name}", **files)
    # On this loaded machine a node sometimes forms without a working client-id registry ("client ID
    # registration timed out": it answers every CONNECT with "server unavailable"); the boards' bridges
    # fail over from it, and so does the witness: the walls are the cluster's, on any node that accepts.
    refusals = {}
    for address in [b.split(":")[0] for b in hub.brokers]:
        node = address
        witness = login("board-2", f"witness-{address.rsplit('.', 1)[1]}")
        if witness.connect():
            break
        refusals[address] = witness.refusal
    else:
        raise AssertionError(f"no node of the cluster accepted board-2's own login: {refusals}")
    own = login("board-1", "own")
    assert own.connect(), own.refusal
    assert witness.subscribe(f"{NS}/from/+/progress") == [1]
    assert own.subscribe(f"{NS}/to/board-1/task") == [1], "control: board-1 reads its own tasks on the cluster"
    mark = uuid.uuid4().hex
    honest, forged = f"honest-{mark}".encode(), f"forged-{mark}".encode()
    own.publish(f"{NS}/from/board-1/progress", honest)
    assert witness.wait_for(honest, 10), "control: board-1 publishing as itself must get through"
    snoop = login("board-1", "snoop")
    assert snoop.connect(), snoop.refusal
    snoop.client.subscribe(f"{NS}/to/board-2/task", qos=1)
    assert snoop.closed.wait(10), "the cluster kept the connection that asked for board-2's tasks"
    forger = login("board-1", "forger")
    assert forger.connect(), forger.refusal
    forger.client.publish(f"{NS}/from/board-2/progress", forged, qos=1)
    assert forger.closed.wait(10), "the cluster kept the connection that published as board-2"
    # The cluster's own log says why it closed them (written a moment after the close).
    refused = [f"access to topic '{topic}' in exchange 'amq.topic' in vhost '/' refused for user 'board-1'"
               for topic in ("dmoa.v1.to.board-2.task", "dmoa.v1.from.board-2.progress")]
    log = wait_until(lambda: (lambda text: text if all(line in text for line in refused) else "")(hub.log()), 15, 0.5)
    assert log, f"the cluster's log does not say it refused: {refused}"
    assert forged not in witness.payloads() and not snoop.received


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_run_changes_nothing_and_restarts_nothing(first_play, lab):
    before = main_pids(lab)
    assert all(len(p) == len(SERVICES) and "0" not in p for p in before.values()), before
    again = Play.start(lab)
    assert again.result.returncode == 0, again.output[-6000:] + again.result.stderr[-2000:]
    totals = again.recap()
    assert {b: (r["changed"], r["failed"]) for b, r in totals.items()} == {b: (0, 0) for b in BOARDS}, \
        again.output[-4000:]
    assert main_pids(lab) == before


def test_edge_agent_submit_on_a_boards_terminal_is_answered_by_all_three(first_play, lab):
    typed = lab.ssh("board-2", *agent("board-2", "submit", "--json", "--quiet", "--layers", "1", "--proposers", "2",
                                      "--timeout", "240", "Name a colour of the sky."), timeout=300)
    assert typed.returncode == 0, typed.stdout + typed.stderr
    answer = json.loads(typed.stdout)
    assert answer["ok"] and answer["answer"].strip()
    assert answer["origin"] == "board-2" and (answer["layers"], answer["proposers"]) == (1, 2)
    assert {i["device"] for i in answer["inferences"]} == set(BOARDS)


def test_the_plain_listener_is_reachable_only_from_the_board_itself(first_play, lab):
    def connects(host: str, port: int) -> bool:
        with inside_netns(BRIDGE_NS):
            try:
                with socket.create_connection((host, port), timeout=3):
                    return True
            except OSError:
                return False
    assert connects(ADDRESS["board-2"], 8883), "board-2's TLS listener must answer on its address"
    assert not connects(ADDRESS["board-2"], 1883), "board-2's plain listener answers on the network"
    on_board = lab.ssh("board-2", "python3", "-c",
                       "import socket; socket.create_connection(('127.0.0.1', 1883), timeout=3); print('ok')")
    assert on_board.stdout.strip() == "ok", on_board.stderr


@pytest.fixture
def peers():
    made: list[Peer] = []

    def make(*args, **kwargs) -> Peer:
        peer = Peer(*args, **kwargs)
        made.append(peer)
        return peer
    try:
        yield make
    finally:
        for peer in made:
            peer.close()


def test_a_boards_credentials_neither_read_another_boards_tasks_nor_publish_as_it(first_play, peers):
    """board-1's certificate and password on board-2's TLS listener, board-2's own as the witness."""
    witness = peers(ADDRESS["board-2"], 8883, "board-2", password("board-2"), **tls("board-2"))
    intruder = peers(ADDRESS["board-2"], 8883, "board-1", password("board-1"), **tls("board-1"))
    assert witness.connect() and intruder.connect(), (witness.refusal, intruder.refusal)
    witness.subscribe(f"{NS}/to/board-2/task")
    witness.subscribe(f"{NS}/from/+/progress")
    intruder.subscribe(f"{NS}/to/board-2/task")
    intruder.subscribe(f"{NS}/from/#")
    mark = uuid.uuid4().hex
    task, forged, own = (f"{what}-{mark}".encode() for what in ("not-a-task", "forged", "own"))
    # A peer may deliver a task to board-2: the witness sees it, the peer that sent it must not.
    intruder.publish(f"{NS}/to/board-2/task", task)
    assert witness.wait_for(task, 10), "control: a task delivered to board-2 must reach board-2's subscriber"
    # The same publisher, in order: a message as board-2 (refused), then one as itself (allowed).
    intruder.publish(f"{NS}/from/board-2/progress", forged)
    intruder.publish(f"{NS}/from/board-1/progress", own)
    assert witness.wait_for(own, 10), "control: board-1 publishing as itself must get through"
    assert forged not in witness.payloads(), "board-1 published as board-2"
    assert not intruder.received, f"board-1 read on board-2's broker: {intruder.received[:3]}"


def foreign_certificate(tmp_path: Path) -> dict[str, Path]:
    """A key and a certificate for CN=board-1 from a CA the mesh never heard of."""
    key, cert = tmp_path / "foreign.key", tmp_path / "foreign.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=board-1"],
                   check=True, capture_output=True, timeout=30)
    return {"ca": PKI / "ca.crt", "cert": cert, "key": key}


@pytest.mark.parametrize("how", ["no certificate", "a certificate from another CA", "a wrong password",
                                 "another board's password"])
def test_the_peer_listener_refuses_a_bridge_without_valid_credentials(first_play, peers, tmp_path, how):
    control = peers(ADDRESS["board-2"], 8883, "board-1", password("board-1"), **tls("board-1"))
    assert control.connect(), f"control: board-1's own credentials must be accepted ({control.refusal})"
    files = {"no certificate": {"ca": PKI / "ca.crt"}, "a certificate from another CA": foreign_certificate(tmp_path)}
    secret = {"a wrong password": "not-the-password", "another board's password": password("board-3")}
    attempt = peers(ADDRESS["board-2"], 8883, "board-1", secret.get(how, password("board-1")),
                    **files.get(how, tls("board-1")))
    assert not attempt.connect(), f"{how}: board-2's broker accepted the connection"
    assert attempt.refusal


def test_a_rebooted_board_comes_back_and_a_prompt_sent_before_is_answered(first_play, lab):
    started = lab.ssh("board-3", "ps", "-o", "lstart=", "-p", "1").stdout.strip()
    submit = subprocess.Popen(
        ssh_argv(lab.ssh_config, lab.boards[0], agent("board-1", "submit", "--json", "--layers", "1", "--proposers",
                                                      "2", "--timeout", "400", "Say hello to a board that reboots.")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_event = submit.stderr.readline()  # the first progress line: the job is under way
        assert first_event.strip(), "edge-agent submit printed no progress"
        lab.ssh("board-3", "sudo", "systemctl", "reboot", timeout=30)
        back = wait_until(lambda: (lambda s: s if s and s != started else "")(
            lab.ssh("board-3", "ps", "-o", "lstart=", "-p", "1", timeout=15).stdout.strip()), 180)
        assert back, "board-3 did not come back from its reboot"
        active = wait_until(lambda: lab.ssh("board-3", "systemctl", "is-active", "edge-mosquitto", "edge-agent",
                                            timeout=15).stdout.split() == ["active", "active"], 120)
        assert active, lab.ssh("board-3", "systemctl", "status", "edge-mosquitto", "edge-agent").stdout[-2000:]
        seen = wait_until(lambda: board_online_on("board-1", "board-3", lab), 120, 2.0)
        assert seen, rejoin_report(lab)
        out, err = submit.communicate(timeout=420)
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.communicate()
    assert submit.returncode == 0, out + err
    answer = json.loads(out)
    assert answer["ok"] and answer["answer"].strip() and answer["origin"] == "board-1"
    assert "rebooting" in (Path(lab.boards[2].console)).read_text()


def rejoin_report(lab: Lab) -> str:
    """Why board-3 is not seen again: its status on board-1 and both brokers' logs of the bridge."""
    shown = lab.ssh("board-1", *agent("board-1", "status", "--json"), timeout=30)
    logs = {b: lab.ssh(b, "sudo", "journalctl", "-q", "-o", "cat", "-n", "25", "-u", "edge-mosquitto",
                       timeout=30).stdout for b in ("board-1", "board-3")}
    agent_log = lab.ssh("board-3", "sudo", "journalctl", "-q", "-o", "cat", "-n", "15", "-u", "edge-agent",
                        timeout=30).stdout
    return (f"board-3 did not rejoin the mesh as seen from board-1; its status there: {shown.stdout[-1500:]}"
            f"{shown.stderr[-500:]}\n--- board-1 broker:\n{logs['board-1']}\n--- board-3 broker:\n{logs['board-3']}"
            f"\n--- board-3 agent:\n{agent_log}")


def board_online_on(where: str, device: str, lab: Lab) -> bool:
    shown = lab.ssh(where, *agent(where, "status", "--json"), timeout=30)
    if shown.returncode != 0:
        return False
    return any(row["device"] == device and row["online"] for row in json.loads(shown.stdout))


def test_teardown_stops_every_service_on_every_board(first_play, lab):
    def states() -> dict[str, list[str]]:
        return {b: lab.ssh(b, "systemctl", "is-active", *SERVICES).stdout.split() for b in BOARDS}
    assert states() == {b: ["active"] * len(SERVICES) for b in BOARDS}
    stopped = Play.start(lab, "--tags", "teardown", timeout=300)
    assert stopped.result.returncode == 0, stopped.output[-4000:]
    after = states()
    # Stopped is inactive, or failed when the process ended with an error while stopping (seen once,
    # for mosquitto on one board of three; cause not found yet); either way no process is left.
    assert all(state in ("inactive", "failed") for states_ in after.values() for state in states_), after
    pids = {b: lab.ssh(b, "systemctl", "show", "-p", "MainPID", "--value", *SERVICES).stdout.split()
            for b in BOARDS}
    assert pids == {b: ["0"] * len(SERVICES) for b in BOARDS}, pids
