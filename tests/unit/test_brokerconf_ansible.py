"""What the Ansible mesh role asks of the broker generator: a loopback listener plus a TLS
listener for peers, ACLs by username, a password file rendered the same way every time, and
the `edge-agent broker` commands fed on stdin."""

import base64
import hashlib

import pytest
import yaml
from click.testing import CliRunner

from edge_agent.commands.broker import broker
from edge_agent.ops import brokerconf
from edge_agent.ops.brokerconf import BrokerSpec, Listener, PeerBroker, TlsFiles

NS = "dmoa/v1"


def board_spec(**overrides):
    base = dict(
        device="pi-1",
        listeners=[Listener("127.0.0.1", 1883, allow_anonymous=False),
                   Listener("192.168.1.21", 8883, tls=True, require_certificate=True, allow_anonymous=False)],
        peers=[PeerBroker("pi-2", "192.168.1.22", 8883)],
        persistence_dir="/var/lib/mosquitto/dmoa", user="mosquitto",
        tls=TlsFiles("/etc/mosquitto/dmoa/ca.crt", "/etc/mosquitto/dmoa/pi-1.crt", "/etc/mosquitto/dmoa/pi-1.key"),
        password_file="/etc/mosquitto/dmoa/passwd", acl_file="/etc/mosquitto/dmoa/acl",
        bridge_username="pi-1", bridge_password="pw-of-pi-1")
    return BrokerSpec(**{**base, **overrides})


def listener_blocks(text):
    blocks = {}
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("listener "):
            blocks[lines[0]] = lines[1:]
    return blocks


def section(acl, user):
    return acl.split(f"user {user}\n")[1].split("\n\n")[0].splitlines()


def test_loopback_listener_is_plain_and_the_peer_listener_demands_a_certificate():
    blocks = listener_blocks(brokerconf.render(board_spec()))
    assert blocks["listener 1883 127.0.0.1"] == []
    tls = blocks["listener 8883 192.168.1.21"]
    assert "require_certificate true" in tls and "tls_version tlsv1.2" in tls
    assert "use_identity_as_username true" not in tls


def test_identity_from_certificate_is_rendered_on_the_tls_listener_only():
    spec = board_spec(listeners=[
        Listener("127.0.0.1", 1883, allow_anonymous=False),
        Listener("192.168.1.21", 8883, tls=True, require_certificate=True, allow_anonymous=False,
                 use_identity_as_username=True)])
    blocks = listener_blocks(brokerconf.render(spec))
    assert "use_identity_as_username true" in blocks["listener 8883 192.168.1.21"]
    assert blocks["listener 1883 127.0.0.1"] == []


@pytest.mark.parametrize("listener", [
    Listener("10.0.0.1", 8883, tls=True, use_identity_as_username=True),
    Listener("10.0.0.1", 1883, require_certificate=True),
])
def test_certificate_options_without_what_they_need_are_refused(listener):
    with pytest.raises(ValueError):
        brokerconf.render(board_spec(listeners=[listener]))


def test_the_local_mesh_shape_still_renders_one_anonymous_listener():
    spec = BrokerSpec(device="edge-1", listeners=[Listener("127.0.1.1", 1883)],
                      peers=[PeerBroker("edge-2", "127.0.1.2", 1883)], persistence_dir="/tmp/x")
    lines = brokerconf.render(spec).splitlines()
    assert "allow_anonymous true" in lines and "listener 1883 127.0.1.1" in lines
    assert not any(line.startswith(("cafile", "bridge_cafile", "password_file")) for line in lines)


def test_a_peer_may_deliver_every_kind_of_addressed_message_and_speak_only_as_itself():
    acl = brokerconf.render_acl("pi-1", ["pi-2", "pi-3"])
    peer = section(acl, "pi-2")
    assert peer == [f"topic write {NS}/to/pi-1/task", f"topic write {NS}/to/pi-1/result",
                    f"topic write {NS}/to/pi-1/submit", f"topic write {NS}/to/pi-1/answer/+",
                    f"topic write {NS}/from/pi-2/#"]


def test_the_device_reads_its_own_topics_and_everyones_status_and_progress_only():
    own = section(brokerconf.render_acl("pi-1", ["pi-2"]), "pi-1")
    reads = [line for line in own if line.startswith(("topic read ", "topic readwrite "))]
    assert sorted(reads) == sorted([f"topic readwrite {NS}/to/pi-1/#", f"topic read {NS}/from/+/status",
                                    f"topic read {NS}/from/+/progress", f"topic readwrite {NS}/local/#"])
    writes_as = [line for line in own if "/from/" in line and line.startswith("topic write")]
    assert writes_as == [f"topic write {NS}/from/pi-1/#"]


def test_a_device_cannot_be_its_own_peer():
    with pytest.raises(ValueError):
        brokerconf.render_acl("pi-1", ["pi-1"])


def test_password_lines_use_mosquittos_pbkdf2_sha512_format():
    line = brokerconf.password_line("pi-1", "s3cret", iterations=101)
    user, rest = line.split(":", 1)
    _, kind, iterations, salt, digest = rest.split("$")
    assert (user, kind, iterations) == ("pi-1", "7", "101")
    raw_salt = base64.b64decode(salt)
    assert len(raw_salt) == 12
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"s3cret", raw_salt, 101, 64)
    assert brokerconf.check_password(line, "s3cret") and not brokerconf.check_password(line, "other")


def test_password_file_is_the_same_for_the_same_credentials_and_salted_per_user():
    users = {"pi-2": "same", "pi-1": "same"}
    first, second = brokerconf.render_passwords(users), brokerconf.render_passwords(dict(reversed(users.items())))
    assert first == second
    lines = first.splitlines()
    assert [line.split(":")[0] for line in lines] == ["pi-1", "pi-2"]
    assert lines[0].split("$")[3] != lines[1].split("$")[3]
    assert brokerconf.password_line("pi-1", "new") != brokerconf.password_line("pi-1", "same")


@pytest.mark.parametrize(("user", "password"), [("", "x"), ("a:b", "x"), ("pi-1", ""), ("pi-1", "two\nlines")])
def test_password_lines_refuse_what_mosquitto_cannot_read(user, password):
    with pytest.raises(ValueError):
        brokerconf.password_line(user, password)


def spec_yaml():
    return yaml.safe_dump({
        "device": "pi-1",
        "listeners": [{"host": "127.0.0.1", "port": 1883, "allow_anonymous": False},
                      {"host": "192.168.1.21", "port": 8883, "tls": True, "require_certificate": True,
                       "allow_anonymous": False}],
        "peers": [{"device": "pi-2", "host": "192.168.1.22", "port": 8883}],
        "persistence_dir": "/var/lib/mosquitto/dmoa",
        "tls": {"cafile": "/c/ca.crt", "certfile": "/c/pi-1.crt", "keyfile": "/c/pi-1.key"},
        "bridge_username": "pi-1", "bridge_password": "pw",
    })


def test_render_and_acl_read_the_spec_from_stdin():
    runner = CliRunner()
    rendered = runner.invoke(broker, ["render", "-"], input=spec_yaml())
    assert rendered.exit_code == 0, rendered.output
    assert "listener 8883 192.168.1.21" in rendered.output and "remote_password pw" in rendered.output
    acl = runner.invoke(broker, ["acl", "-"], input=spec_yaml())
    assert acl.exit_code == 0, acl.output
    assert acl.output == brokerconf.render_acl("pi-1", ["pi-2"])


def test_passwd_reads_users_from_stdin_and_never_prints_the_passwords():
    result = CliRunner().invoke(broker, ["passwd"], input="pi-1: hunter2hunter2\npi-2: other-secret\n")
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "other-secret" not in result.output
    assert result.output == brokerconf.render_passwords({"pi-1": "hunter2hunter2", "pi-2": "other-secret"})


def test_a_bad_spec_is_one_clean_line():
    result = CliRunner().invoke(broker, ["render", "-"], input="device: pi-1\n")
    assert result.exit_code != 0
    assert "invalid broker spec" in str(result.exception) or "invalid broker spec" in result.output

