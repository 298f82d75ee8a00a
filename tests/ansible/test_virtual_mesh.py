"""A real run of site.yml against the example inventory's three virtual boards: real brokers
bridged over TLS, real agents with the small real model; then what the run left behind is
checked, a second run must change nothing, and a peer's credentials are tried against another
board's broker. The tests run in file order and share one mesh (the virtual_mesh fixture)."""

from __future__ import annotations

import json
import re
import ssl
import stat
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from playbook_harness import ADDRESSES, DEVICES, TLS_PORT, VirtualMesh, alive, recap, run, stop, tool

pytestmark = [pytest.mark.ansible, pytest.mark.integration, pytest.mark.timeout(300)]

NS = "dmoa/v1"


@pytest.fixture(scope="module")
def first_run(virtual_mesh: VirtualMesh):
    result = virtual_mesh.playbook()
    if result.returncode != 0:
        pytest.fail("the first run failed:\n" + result.stdout[-6000:] + result.stderr[-2000:])
    return result


def test_first_run_provisions_every_board_and_its_health_check_passes(first_run, virtual_mesh):
    totals = recap(first_run.stdout)
    assert set(totals) == set(DEVICES)
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0 for r in totals.values())
    found = re.search(r"Board board-1: answered in [0-9.]+ s by ([a-z0-9, -]+)", " ".join(first_run.stdout.split()))
    assert found, first_run.stdout[-3000:]
    assert sorted(found.group(1).split(", ")) == list(DEVICES)
    assert set(virtual_mesh.pids()) == {f"{d}/{s}" for d in DEVICES for s in ("edge-agent", "edge-mosquitto")}
    assert all(alive(pid) for pid in virtual_mesh.pids().values())


def test_the_mesh_answers_edge_agent_submit(first_run, virtual_mesh):
    board = virtual_mesh.board("board-2")
    result = run([tool("edge-agent"), "submit", "--json", "--quiet", "--layers", "1", "--proposers", "2",
                  "--timeout", "120", "--broker", virtual_mesh.local_broker("board-2"), "--username", "board-2",
                  "--password-file", str(board / "etc/edge-agent/broker.password"),
                  "Name a colour of the sky."], timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["ok"] and answer["answer"].strip()
    assert answer["origin"] == "board-2"
    assert (answer["layers"], answer["proposers"]) == (1, 2)
    assert {i["device"] for i in answer["inferences"]} == set(DEVICES)


def test_secrets_stay_where_they_belong(first_run, virtual_mesh):
    passwords = {d: virtual_mesh.password(d) for d in DEVICES}
    for device in DEVICES:
        board = virtual_mesh.board(device)
        others = [p for d, p in passwords.items() if d != device]
        for path in board.rglob("*"):
            if path.is_file() and path.suffix != ".gguf":
                text = path.read_bytes().decode("utf-8", "replace")
                assert not any(p in text for p in others), f"{path} holds another board's password"
        conf_dir = board / "etc/mosquitto/dmoa"
        for name in ("mosquitto.conf", "passwd", "acl", f"{device}.key"):
            assert stat.S_IMODE((conf_dir / name).stat().st_mode) == 0o600, name
        assert not (conf_dir / "ca.key").exists()
        assert all(line.split(":", 1)[1].startswith("$7$") for line in (conf_dir / "passwd").read_text().splitlines())
    for result in virtual_mesh.runs:
        assert not any(p in result.stdout + result.stderr for p in passwords.values())


def test_broker_and_agent_units_are_hardened(first_run, virtual_mesh):
    units = virtual_mesh.board("board-1") / "etc/systemd/system"
    agent = (units / "edge-agent.service").read_text()
    for line in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 f"ReadWritePaths={virtual_mesh.board('board-1')}/var/lib/edge-agent"):
        assert line in agent.splitlines(), line
    broker = (units / "edge-mosquitto.service").read_text()
    assert "ExecStart=/usr/sbin/mosquitto -c " in broker and "NoNewPrivileges=yes" in broker


class Peer:
    """An MQTT client logged in on a broker, collecting what it receives."""

    def __init__(self, host: str, port: int, username: str, password: str, tls: tuple[str, str, str] | None):
        self.received: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.refused: str | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-test-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            ca, cert, key = tls
            self.client.tls_set(ca_certs=ca, certfile=cert or None, keyfile=key or None,
                                tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = lambda c, u: self._refuse("connection failed")
        self.client.on_disconnect = lambda c, u, f, reason, p: self._refuse(f"disconnected: {reason}")
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, props):
        if reason.is_failure:
            self.refused = str(reason)
        self.connected.set()

    def _refuse(self, why: str) -> None:
        if not self.connected.is_set():
            self.refused = why
            self.connected.set()

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self.connected.wait(timeout_s) and self.refused is None

    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def peer_tls(mesh: VirtualMesh, device: str) -> tuple[str, str, str]:
    return (str(mesh.pki_dir / "ca.crt"), str(mesh.pki_dir / f"{device}.crt"), str(mesh.pki_dir / f"{device}.key"))


def test_a_peer_can_neither_read_another_boards_tasks_nor_publish_as_it(first_run, virtual_mesh):
    """board-1's credentials (certificate + password) on board-2's TLS listener."""
    mesh = virtual_mesh
    observer = Peer(ADDRESSES["board-2"], int(mesh.local_broker("board-2").rsplit(":", 1)[1]), "board-2",
                    mesh.password("board-2"), None)
    intruder = Peer(ADDRESSES["board-2"], TLS_PORT, "board-1", mesh.password("board-1"), peer_tls(mesh, "board-1"))
    try:
        assert observer.wait_connected() and intruder.wait_connected(), (observer.refused, intruder.refused)
        observer.client.subscribe(f"{NS}/from/+/progress", qos=1)
        intruder.client.subscribe(f"{NS}/to/board-2/task", qos=1)
        intruder.client.subscribe("#", qos=1)
        time.sleep(0.5)
        mark = uuid.uuid4().hex
        task = f"not-a-task-{mark}".encode()
        as_board_2 = f"forged-{mark}".encode()
        as_itself = f"own-{mark}".encode()
        observer.client.publish(f"{NS}/to/board-2/task", task, qos=1).wait_for_publish(5)
        intruder.client.publish(f"{NS}/from/board-2/progress", as_board_2, qos=1).wait_for_publish(5)
        intruder.client.publish(f"{NS}/from/board-1/progress", as_itself, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while as_itself not in observer.payloads() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        assert as_itself in observer.payloads(), "control: a peer publishing as itself must get through"
        assert as_board_2 not in observer.payloads(), "board-1 published as board-2"
        assert not intruder.received, f"board-1 read on board-2's broker: {intruder.received[:3]}"
    finally:
        observer.close()
        intruder.close()


@pytest.mark.parametrize("how", ["no certificate", "wrong password", "another board's password"])
def test_the_peer_listener_refuses_incomplete_credentials(first_run, virtual_mesh, how):
    mesh = virtual_mesh
    ca, cert, key = peer_tls(mesh, "board-1")
    tls = (ca, "", "") if how == "no certificate" else (ca, cert, key)
    password = {"no certificate": mesh.password("board-1"), "wrong password": "not-the-password",
                "another board's password": mesh.password("board-3")}[how]
    try:
        peer = Peer(ADDRESSES["board-2"], TLS_PORT, "board-1", password, tls)
    except (ssl.SSLError, OSError):
        return  # refused during the TLS handshake
    try:
        assert not peer.wait_connected(5), f"{how}: board-2's broker accepted the connection"
    finally:
        peer.close()


def test_second_run_changes_nothing_and_restarts_nothing(first_run, virtual_mesh):
    before = virtual_mesh.pids()
    result = virtual_mesh.playbook()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    totals = recap(result.stdout)
    assert set(totals) == set(DEVICES)
    assert {d: (r["changed"], r["failed"]) for d, r in totals.items()} == {d: (0, 0) for d in DEVICES}, \
        result.stdout[-4000:]
    assert virtual_mesh.pids() == before


def test_a_changed_setting_restarts_only_the_agents_and_a_dead_agent_fails_the_health_check(
        first_run, virtual_mesh):
    """board-3's agent is stopped; board-1 and board-2 get a new agent setting and a health check."""
    before = virtual_mesh.pids()
    stop(before["board-3/edge-agent"])
    result = virtual_mesh.playbook("--tags", "agent_configure,agent_run,health", "--limit", "board-1,board-2",
                                   agent_max_tokens=40, agent_health_timeout_s=1)
    after = virtual_mesh.pids()
    for device in ("board-1", "board-2"):
        assert after[f"{device}/edge-mosquitto"] == before[f"{device}/edge-mosquitto"]
        assert after[f"{device}/edge-agent"] != before[f"{device}/edge-agent"]
        assert alive(after[f"{device}/edge-agent"])
        assert "max_tokens: 40" in (virtual_mesh.board(device) / "etc/edge-agent/agent.yaml").read_text()
    assert "max_tokens: 40" not in (virtual_mesh.board("board-3") / "etc/edge-agent/agent.yaml").read_text()
    assert result.returncode != 0
    output = " ".join(result.stdout.split())  # the YAML callback wraps long messages
    for device in ("board-1", "board-2"):
        assert f"Board {device} ({device}): board-3 is not online on its broker" in output, output[-4000:]


def test_teardown_stops_every_process(first_run, virtual_mesh):
    pids = virtual_mesh.pids()
    assert virtual_mesh.teardown() == []
    assert not any(alive(pid) for pid in pids.values())
