"""The hub topology on a real 3-node RabbitMQ cluster: six virtual devices, each with its own
mosquitto bridged to the cluster instead of to every peer. One mesh for the module (the cluster
takes half a minute to form); the tests that change it (a device joins, a node dies) come last."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.history import Recorder, check
from support.meshes import address_block, client_for, running_mesh

from edge_agent.ops import hubcluster, localmesh
from edge_agent.ops import localhub as hubmesh
from edge_agent.ops.localmesh import agent_settings

pytestmark = pytest.mark.timeout(420)
HUB_BASE = address_block()


@pytest.fixture(scope="module")
def hub_mesh(tmp_path_factory):
    if not (hubcluster.RABBITMQ / "rabbitmq-server").exists():
        pytest.fail("rabbitmq-server is not installed: run `make setup`")
    root = tmp_path_factory.mktemp("hub")
    with running_mesh(root, 6, engine="fake", hub_nodes=3, hub_base=HUB_BASE) as devices:
        yield root, devices


def client(name: str, host: str, port: int = 1883, user: str = "", password: str = "") -> mqtt.Client:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name)
    if user:
        c.username_pw_set(user, password)
    return c


class Spy:
    """Counts every message matching filters on one broker; ready once the broker acknowledged the subscription."""

    def __init__(self, name: str, host: str, filters: list[str], seen: Counter, cond: threading.Condition,
                 **login: str) -> None:
        self.ready = threading.Event()
        self.closed = threading.Event()
        # On the hub a device's sessions must be named after it (`<device>.<anything>`).
        prefix = f"{login['user']}." if login else "spy-"
        self.c = client(f"{prefix}{name}-{time.monotonic_ns()}", host, **login)

        def on_message(_c, _u, message) -> None:
            with cond:
                seen[(name, message.topic, message.payload)] += 1
                cond.notify_all()

        self.c.on_message = on_message
        self.c.on_subscribe = lambda *_: self.ready.set()
        self.c.on_disconnect = lambda *_: self.closed.set()
        self.c.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        self.c.connect(host, 1883)
        self.c.loop_start()

    def stop(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def test_each_message_reaches_each_broker_once_and_the_hubs_echo_never_passes_for_a_peers(hub_mesh):
    _, mesh = hub_mesh
    seen: Counter = Counter()
    cond = threading.Condition()
    filters = ["dmoa/v1/to/+/probe", "dmoa/v1/from/+/probe", "dmoa/v1/local/probe", "dmoa/v1/echo/#"]
    spies = [Spy(d.device, d.host, filters, seen, cond) for d in mesh]
    try:
        assert all(s.ready.wait(10) for s in spies), "every spy subscribed"
        sender = client("probe-sender", mesh[0].host)
        sender.connect(mesh[0].host, 1883)
        sender.loop_start()
        for topic in ("dmoa/v1/to/edge-3/probe", "dmoa/v1/to/edge-1/probe", "dmoa/v1/from/edge-1/probe",
                      "dmoa/v1/local/probe"):
            sender.publish(topic, b"p", qos=1).wait_for_publish(5)
        # An end marker on the same paths: whatever copy the mesh would make of the probes arrives before it.
        sender.publish("dmoa/v1/from/edge-1/probe", b"end", qos=1).wait_for_publish(5)
        with cond:
            assert cond.wait_for(lambda: all(seen[(d.device, "dmoa/v1/from/edge-1/probe", b"end")] for d in mesh)
                                 and seen[("edge-1", "dmoa/v1/echo/edge-1/probe", b"end")], 30)
        sender.loop_stop()
        sender.disconnect()
    finally:
        for spy in spies:
            spy.stop()
    counts = {(d, t): n for (d, t, p), n in seen.items() if p == b"p"}
    assert counts == {
        ("edge-1", "dmoa/v1/to/edge-3/probe"): 1,     # published there
        ("edge-3", "dmoa/v1/to/edge-3/probe"): 1,     # through the hub to its addressee only
        ("edge-1", "dmoa/v1/to/edge-1/probe"): 1,     # addressed to itself: never back from the hub
        **{(d.device, "dmoa/v1/from/edge-1/probe"): 1 for d in mesh},  # everyone hears edge-1, once
        ("edge-1", "dmoa/v1/local/probe"): 1,          # local topics never leave the board
        # The hub did send edge-1 its own message back (RabbitMQ has no no-local for MQTT 3.1.1):
        # the bridge set it aside under echo/, where no agent reads, and sent it nowhere.
        ("edge-1", "dmoa/v1/echo/edge-1/probe"): 1,
    }


def test_six_devices_answer_m2_k2_prompts_from_every_device_through_the_cluster(hub_mesh):
    _, mesh = hub_mesh
    answers: dict[str, object] = {}

    def ask(device) -> None:
        with client_for(device) as c:
            answers[device.device] = c.submit(f"Prompt from {device.device}", 2, 2, timeout_s=120)

    threads = [threading.Thread(target=ask, args=(d,)) for d in mesh]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert sorted(answers) == [d.device for d in mesh], "every device got an answer"
    for origin, answer in answers.items():
        assert answer.ok and not answer.degraded, (origin, answer.error, answer.notes)
        for layer in (1, 2):
            devices = [i.device for i in answer.inferences if i.layer == layer]
            assert origin in devices and len(set(devices)) == len(devices) == 3
        assert [(i.device, i.role) for i in answer.inferences if i.layer == 3] == [(origin, "aggregate")]
    helpers = {i.device for a in answers.values() for i in a.inferences if i.device != a.inferences[-1].device}
    assert len(helpers) > 1, "peers on other nodes of the cluster were used"


def hub_log(root: Path) -> str:
    return "".join(p.read_text() for p in (root / "hub").glob("hub-*/log/*.log"))


def test_a_devices_credentials_cannot_read_anothers_tasks_nor_publish_as_it_on_the_hub(hub_mesh):
    root, mesh = hub_mesh
    creds = json.loads((root / "hub" / hubmesh.CREDENTIALS).read_text())
    node = hubcluster.load(root / "hub").nodes[1]
    login = {"user": "edge-1", "password": creds["edge-1"]}
    seen: Counter = Counter()
    cond = threading.Condition()
    # Reachable first: with its own credentials edge-1 reads its own tasks on the hub and publishes as itself.
    own = Spy("own", node.host, ["dmoa/v1/to/edge-1/task"], seen, cond, **login)
    watcher = Spy("watch", mesh[1].host, ["dmoa/v1/from/+/acl"], seen, cond)
    try:
        assert own.ready.wait(10) and watcher.ready.wait(10) and not own.closed.is_set(), (
            f"own: subscribed {own.ready.is_set()}, closed {own.closed.is_set()}; watcher subscribed "
            f"{watcher.ready.is_set()}; the hub's log ends with:\n{hub_log(root)[-4000:]}")
        snoop = Spy("snoop", node.host, ["dmoa/v1/to/edge-2/task"], seen, cond, **login)
        assert snoop.closed.wait(10), "the hub closed the connection that asked for edge-2's tasks"
        snoop.stop()
        forger = client("edge-1.forger", node.host, **login)
        closed = threading.Event()
        forger.on_disconnect = lambda *_: closed.set()
        forger.connect(node.host, 1883)
        forger.loop_start()
        forger.publish("dmoa/v1/from/edge-2/acl", b"forged", qos=1)
        assert closed.wait(10), "the hub closed the connection that published as edge-2"
        forger.loop_stop()
        honest = client("edge-1.honest", node.host, **login)
        honest.connect(node.host, 1883)
        honest.loop_start()
        honest.publish("dmoa/v1/from/edge-1/acl", b"honest", qos=1).wait_for_publish(10)
        with cond:
            assert cond.wait_for(lambda: seen[("watch", "dmoa/v1/from/edge-1/acl", b"honest")], 20)
        honest.loop_stop()
        honest.disconnect()
    finally:
        own.stop()
        watcher.stop()
    assert seen[("watch", "dmoa/v1/from/edge-2/acl", b"forged")] == 0, "the forgery reached no board"
    log = hub_log(root)
    assert "access to topic 'dmoa.v1.to.edge-2.task' in exchange 'amq.topic' in vhost '/' refused for user " \
           "'edge-1'" in log, "the refusal to read was the hub's authorisation"
    assert "access to topic 'dmoa.v1.from.edge-2.acl' in exchange 'amq.topic' in vhost '/' refused for user " \
           "'edge-1'" in log, "the refusal to publish was the hub's authorisation"


def test_a_node_left_out_of_the_client_id_registry_is_brought_back_and_accepts_logins(hub_mesh):
    """RabbitMQ's MQTT client-id registry is a Raft group of its own; a node left out of it when the
    cluster formed refuses every login. form_client_id_registry, run by every cluster start, finds a
    node outside the group and joins it (here one is taken out by hand)."""
    root, _ = hub_mesh
    cluster = hubcluster.load(root / "hub")
    creds = json.loads((root / "hub" / hubmesh.CREDENTIALS).read_text())
    every = {n.name for n in cluster.nodes}

    def members() -> set[str] | None:  # as the first node sees them
        return hubcluster.registry_members(cluster).get(cluster.nodes[0].name)
    assert members() == every, "control: the cluster started with all three"
    left = cluster.nodes[2]
    hubcluster.ctl(cluster, cluster.nodes[0], "eval",
                   f"ra:remove_member({{mqtt_node, '{cluster.nodes[0].name}'}}, {{mqtt_node, '{left.name}'}}).")
    assert members() == every - {left.name}
    hubcluster.form_client_id_registry(cluster, 90)
    assert members() == every
    accepted = threading.Event()
    login = client("edge-1.rejoined", left.host, user="edge-1", password=creds["edge-1"])
    login.on_connect = lambda _c, _u, _f, reason, _p: accepted.set() if not reason.is_failure else None
    login.connect(left.host, 1883)
    login.loop_start()
    try:
        assert accepted.wait(15), f"{left.name} did not accept edge-1's login after rejoining the registry"
    finally:
        login.loop_stop()
        login.disconnect()


def test_a_new_device_joins_without_any_change_to_the_others(hub_mesh):
    root, mesh = hub_mesh

    def fingerprint() -> dict[str, tuple[str, int, int]]:
        return {d.device: (hashlib.sha256((Path(d.directory) / "mosquitto.conf").read_bytes()).hexdigest(),
                           d.broker_pid, d.agent_pid) for d in localmesh.load(root)}

    before = fingerprint()
    settings = agent_settings("x", "fake", 0.3, ("admission=accept",))
    new = hubmesh.join(root, settings)  # returns once all seven see each other
    assert new.device == "edge-7"
    after = fingerprint()
    assert {k: after[k] for k in before} == before, "no other board's configuration or process changed"
    assert all(localmesh._alive(d.broker_pid) and localmesh._alive(d.agent_pid) for d in localmesh.load(root))
    with client_for(new) as c:
        answer = c.submit("Hello from the newcomer", 2, 2, timeout_s=120)
    assert answer.ok and not answer.degraded, answer.notes
    with client_for(mesh[0]) as c:
        answer = c.submit("Who is new?", 1, 6, timeout_s=120)
    assert answer.ok and "edge-7" in {i.device for i in answer.inferences}, "old boards use the newcomer"


@pytest.mark.faults
def test_a_cluster_node_killed_under_load_loses_nothing_and_its_return_is_absorbed(hub_mesh, reliability):
    root, _ = hub_mesh
    mesh = localmesh.load(root)
    cluster = hubcluster.load(root / "hub")
    victim = cluster.nodes[0]   # the first node of edge-1's, edge-4's and edge-7's bridges
    layers, proposers, rate = 2, 2, 2.0
    recorder = Recorder(mesh[0])
    offered = 0

    def offer(seconds: float) -> None:
        nonlocal offered
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            recorder.offer(mesh[offered % len(mesh)].device, f"prompt {offered}", layers, proposers)
            offered += 1
            time.sleep(1.0 / rate)  # the offered load's pace, not a wait for an event

    try:
        offer(8)
        hubcluster.kill_node(victim)
        killed_at = time.monotonic()
        probe = recorder.offer("edge-1", "through a backup node", layers, proposers)  # edge-1's primary is gone
        offer(12)
        assert recorder.wait_all_answered(90), "every acknowledged prompt was answered with the node down"
        failover_s = probe.answers[0][0] - killed_at
        hubcluster.restart_node(cluster, victim.name)
        offer(8)
        assert recorder.wait_all_answered(90), "every acknowledged prompt was answered after the node's return"
    finally:
        recorder.close()
    verdict = check(recorder, [Path(d.directory) / "data" / "agent.db" for d in mesh])
    logs = (Path(mesh[0].directory) / "broker" / "mosquitto.log").read_text()
    backups = {f"({n.host}:{n.mqtt_port})" for n in cluster.nodes[1:]}
    reliability(scenario=f"hub: one of 3 RabbitMQ nodes SIGKILLed under load, {len(mesh)} boards, "
                         f"M={layers} k={proposers}, then restarted", trials=verdict.offered,
                lost=len(verdict.lost), duplicated=len(verdict.duplicated), recovered=len(verdict.recovered),
                recover_s=failover_s, figure=f"{verdict.answered} answered; a prompt at edge-1 answered "
                                             f"{failover_s:.1f} s after the kill; slowest "
                                             f"{verdict.latencies[-1]:.1f} s")
    print(f"node kill: {verdict.summary()}; failover answer {failover_s:.1f} s; slowest {verdict.latencies[-1]:.1f} s")
    assert any(f"Connecting bridge (step 1) edge-1-to-hub {b}" in logs for b in backups), "edge-1 failed over"
    assert verdict.valid, verdict.summary()
    assert verdict.answered == verdict.offered == offered + 1 and not verdict.refused, verdict.summary()
