from edge_agent.ops import brokerconf
from edge_agent.ops.brokerconf import BrokerSpec, Listener, PeerBroker, TlsFiles


def spec(**overrides):
    base = dict(device="edge-1", listeners=[Listener("127.0.1.1", 1883)],
                peers=[PeerBroker("edge-2", "127.0.1.2", 1883), PeerBroker("edge-3", "127.0.1.3", 1883)],
                persistence_dir="/var/lib/mosquitto", user="mosquitto")
    return BrokerSpec(**{**base, **overrides})


def bridges(text):
    blocks = text.split("\nconnection ")[1:]
    return {block.splitlines()[0]: block.splitlines() for block in blocks}


def test_one_bridge_per_peer_with_the_settings_that_matter():
    text = brokerconf.render(spec())
    found = bridges(text)
    assert set(found) == {"edge-1-to-edge-2", "edge-1-to-edge-3"}
    lines = found["edge-1-to-edge-2"]
    for setting in ("address 127.0.1.2:1883", "remote_clientid bridge-edge-1-to-edge-2",
                    "bridge_protocol_version mqttv311", "cleansession false", "keepalive_interval 10",
                    "restart_timeout 2 20"):
        assert setting in lines
    assert [line for line in lines if line.startswith("topic ")] == [
        "topic dmoa/v1/to/edge-2/# out 1", "topic dmoa/v1/from/edge-1/# out 1"]
    for setting in ("persistence true", "max_queued_messages 100000", "set_tcp_nodelay true",
                    "user mosquitto", "listener 1883 127.0.1.1"):
        assert setting in text.splitlines()


def test_every_topic_line_names_qos_1():
    text = brokerconf.render(spec())
    topic_lines = [line for line in text.splitlines() if line.startswith("topic ")]
    assert topic_lines and all(line.endswith(" out 1") for line in topic_lines)


def test_tls_and_logins_are_rendered_for_listener_and_bridges():
    text = brokerconf.render(spec(
        listeners=[Listener("0.0.0.0", 8883, tls=True, require_certificate=True, allow_anonymous=False)],
        tls=TlsFiles("/etc/ca.crt", "/etc/dev.crt", "/etc/dev.key"),
        password_file="/etc/mosquitto/passwd", acl_file="/etc/mosquitto/acl",
        bridge_username="edge-1", bridge_password="secret"))
    lines = text.splitlines()
    for setting in ("allow_anonymous false", "cafile /etc/ca.crt", "require_certificate true",
                    "password_file /etc/mosquitto/passwd", "acl_file /etc/mosquitto/acl",
                    "bridge_cafile /etc/ca.crt", "remote_username edge-1", "remote_password secret"):
        assert setting in lines


def test_acl_lets_a_peer_deliver_only_to_this_device_and_speak_only_as_itself():
    acl = brokerconf.render_acl("edge-1", ["edge-2"])
    peer = acl.split("user edge-2\n")[1].split("\n\n")[0].splitlines()
    assert "topic write dmoa/v1/to/edge-1/task" in peer
    assert "topic write dmoa/v1/from/edge-2/#" in peer
    assert not any("from/edge-1" in line or "read" in line for line in peer)
