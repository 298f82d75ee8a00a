"""The hub topology's configuration: the board's one bridge and the cluster's permissions."""

import base64
import hashlib
import json
import re

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli as main
from edge_agent.ops import brokerconf, hubconf
from edge_agent.ops.brokerconf import BrokerSpec, HubBridge, Listener, PeerBroker

NODES = [("10.0.0.1", 8883), ("10.0.0.2", 8883), ("10.0.0.3", 8883)]


def hub_spec(**overrides):
    base = dict(device="edge-1", listeners=[Listener("127.0.1.1", 1883)], peers=[],
                persistence_dir="/var/lib/mosquitto", hub=HubBridge(NODES, "edge-1", "s3cret"))
    return BrokerSpec(**{**base, **overrides})


def test_one_bridge_to_every_node_of_the_cluster_with_the_echo_and_self_remaps():
    text = brokerconf.render(hub_spec())
    assert text.count("\nconnection ") == 1
    lines = text.split("\nconnection edge-1-to-hub\n")[1].splitlines()
    for setting in ("address 10.0.0.1:8883 10.0.0.2:8883 10.0.0.3:8883", "round_robin true",
                    "remote_clientid edge-1.hub", "try_private false", "cleansession false",
                    "bridge_protocol_version mqttv311", "remote_username edge-1", "remote_password s3cret"):
        assert setting in lines
    assert [line for line in lines if line.startswith("topic ")] == [
        "topic # out 1 dmoa/v1/to/edge-1/ dmoa/v1/self/edge-1/",   # first: own work never leaves as work
        "topic dmoa/v1/to/+/# out 1",
        "topic dmoa/v1/from/edge-1/# out 1",
        "topic dmoa/v1/to/edge-1/# in 1",
        "topic dmoa/v1/from/+/# in 1",
        "topic # in 1 dmoa/v1/echo/edge-1/ dmoa/v1/from/edge-1/",  # the hub's echo, set aside
    ]


def test_a_board_bridges_to_its_peers_or_to_a_hub_never_both():
    with pytest.raises(ValueError, match="not both"):
        brokerconf.render(hub_spec(peers=[PeerBroker("edge-2", "127.0.1.2", 1883)]))
    with pytest.raises(ValueError, match="at least one node"):
        brokerconf.render(hub_spec(hub=HubBridge([], "edge-1", "x")))


def key(topic: str) -> str:
    """An MQTT topic or filter as RabbitMQ's routing or binding key."""
    return topic.replace("/", ".").replace("+", "*")


def test_the_hub_lets_a_device_publish_what_its_bridge_forwards_and_only_as_itself():
    write = re.compile(hubconf.topic_permissions("edge-1")["write"])
    for allowed in ("dmoa/v1/from/edge-1/status", "dmoa/v1/from/edge-1/progress", "dmoa/v1/to/edge-2/task",
                    "dmoa/v1/to/edge-10/answer/job_1", "dmoa/v1/to/edge-3/anything/else",
                    "dmoa/v1/self/edge-1/task"):
        assert write.match(key(allowed)), allowed
    for refused in ("dmoa/v1/from/edge-2/status", "dmoa/v1/from/edge-10/status", "dmoa/v1/self/edge-2/task",
                    "dmoa/v1/local/identity", "other/topic", "dmoa/v1/echo/edge-1/status"):
        assert not write.match(key(refused)), refused


def test_the_hub_lets_a_device_subscribe_to_its_bridges_filters_and_no_other_devices_tasks():
    read = re.compile(hubconf.topic_permissions("edge-1")["read"])
    for allowed in ("dmoa/v1/to/edge-1/#", "dmoa/v1/from/+/#", "dmoa/v1/from/edge-1/#", "dmoa/v1/to/edge-1/task",
                    "dmoa/v1/from/edge-2/status"):
        assert read.match(key(allowed)), allowed
    for refused in ("dmoa/v1/to/edge-2/task", "dmoa/v1/to/+/task", "dmoa/v1/to/#", "#", "dmoa/v1/#",
                    "dmoa/v1/to/edge-10/#", "dmoa/v1/self/edge-1/#"):
        assert not read.match(key(refused)), refused


def test_definitions_give_each_device_its_login_and_only_its_own_sessions():
    defs = hubconf.definitions({"edge-1": "pw1", "edge-10": "pw10"})
    assert [u["name"] for u in defs["users"]] == ["edge-1", "edge-10"]
    raw = base64.b64decode(defs["users"][0]["password_hash"])
    assert raw[4:] == hashlib.sha256(raw[:4] + b"pw1").digest(), "RabbitMQ's salted SHA-256"
    assert defs == hubconf.definitions({"edge-1": "pw1", "edge-10": "pw10"}), "same input, same file"
    configure = re.compile(defs["permissions"][0]["configure"])
    assert configure.match("mqtt-subscription-edge-1.hubqos1")
    assert not configure.match("mqtt-subscription-edge-10.hubqos1"), "edge-1 cannot take edge-10's session"


def test_node_configuration_listens_on_one_address_with_no_anonymous_and_replicated_sessions():
    node = hubconf.HubNode("hub-1@10.0.0.1", "10.0.0.1", 1883)
    text = hubconf.render_node_conf(node, [node], "/etc/rabbitmq/definitions.json", "adminpw")
    lines = text.splitlines()
    for setting in ("listeners.tcp = none", "mqtt.listeners.tcp.1 = 10.0.0.1:1883", "mqtt.allow_anonymous = false",
                    "mqtt.durable_queue_type = quorum", "default_pass = adminpw"):
        assert setting in lines


def test_the_cli_renders_a_hub_spec_and_the_hubs_definitions(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("device: edge-1\nlisteners: [{host: 0.0.0.0, port: 1883}]\npersistence_dir: /var/lib/m\n"
                    "hub: {nodes: ['10.0.0.1:8883', '10.0.0.2:8883'], username: edge-1, password: pw}\n")
    runner = CliRunner()
    out = runner.invoke(main, ["broker", "render", str(spec)])
    assert out.exit_code == 0, out.output
    assert "address 10.0.0.1:8883 10.0.0.2:8883" in out.output
    users = tmp_path / "users.yaml"
    users.write_text("edge-1: pw\nedge-2: pw2\n")
    out = runner.invoke(main, ["broker", "hub-definitions", str(users)])
    assert out.exit_code == 0, out.output
    assert [u["name"] for u in json.loads(out.output)["users"]] == ["edge-1", "edge-2"]
    spec.write_text("device: edge-1\nlisteners: []\npersistence_dir: /m\nhub: {nodes: ['nohost'], username: u, "
                    "password: p}\n")
    out = runner.invoke(main, ["broker", "render", str(spec)])
    assert out.exit_code != 0 and "invalid hub node address" in out.output


def bridge_lines(spec: BrokerSpec) -> list[str]:
    return brokerconf.render(spec).split("\nconnection edge-1-to-hub\n")[1].splitlines()


def test_the_hub_bridge_keeps_its_state_on_the_board_only():
    lines = bridge_lines(hub_spec())
    assert {"notifications true", "notifications_local_only true",
            f"notification_topic {brokerconf.HUB_STATE_TOPIC}"} <= set(lines)
    assert brokerconf.HUB_STATE_TOPIC.startswith("dmoa/v1/local/")  # forwarded by no bridge line


def test_tls_to_the_hub_uses_the_clusters_ca_not_the_mesh_ca():
    mesh = brokerconf.TlsFiles("/etc/m/ca.crt", "/etc/m/edge-1.crt", "/etc/m/edge-1.key")
    own = HubBridge(NODES, "edge-1", "pw", tls=brokerconf.HubTls(cafile="/etc/m/hub-ca.crt"))
    lines = bridge_lines(hub_spec(hub=own, tls=mesh))
    assert "bridge_cafile /etc/m/hub-ca.crt" in lines and "bridge_insecure false" in lines
    assert not [line for line in lines if "/etc/m/ca.crt" in line or line.startswith("bridge_certfile")]
    mutual = HubBridge(NODES, "edge-1", "pw", tls=brokerconf.HubTls(capath="/etc/ssl/certs", certfile="/c",
                                                                  keyfile="/k"))
    lines = bridge_lines(hub_spec(hub=mutual))
    assert {"bridge_capath /etc/ssl/certs", "bridge_certfile /c", "bridge_keyfile /k"} <= set(lines)
    for wrong in (brokerconf.HubTls(), brokerconf.HubTls(cafile="/a", capath="/b"),
                  brokerconf.HubTls(cafile="/a", certfile="/c")):
        with pytest.raises(ValueError):
            brokerconf.render(hub_spec(hub=HubBridge(NODES, "edge-1", "pw", tls=wrong)))
    plain = bridge_lines(hub_spec())
    assert not [line for line in plain if line.startswith("bridge_ca")]


def test_a_tls_node_listens_for_mqtt_over_tls_only():
    node = hubconf.HubNode("hub-1@10.0.0.1", "10.0.0.1", 8883)
    tls = hubconf.NodeTls("/h/ca.pem", "/h/node.pem", "/h/node.key", require_client_certificate=True)
    lines = hubconf.render_node_conf(node, [node], "/d.json", "pw", tls).splitlines()
    assert "mqtt.listeners.tcp = none" in lines and "mqtt.listeners.ssl.1 = 10.0.0.1:8883" in lines
    assert not [line for line in lines if line.startswith("mqtt.listeners.tcp.")]
    for setting in ("ssl_options.cacertfile = /h/ca.pem", "ssl_options.verify = verify_peer",
                    "ssl_options.fail_if_no_peer_cert = true"):
        assert setting in lines


def test_the_cli_reads_tls_to_the_hub(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("device: edge-1\nlisteners: [{host: 127.0.0.1, port: 1883}]\npersistence_dir: /m\n"
                    "hub: {nodes: ['10.0.0.1:8883'], username: edge-1, password: pw, tls: {cafile: /m/hub-ca.crt}}\n")
    out = CliRunner().invoke(main, ["broker", "render", str(spec)])
    assert out.exit_code == 0, out.output
    assert "bridge_cafile /m/hub-ca.crt" in out.output
