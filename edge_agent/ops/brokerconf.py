"""The one generator of mosquitto configuration, for the local mesh and for Ansible alike.

Per bridge (see docs/architecture.md for the reasons): MQTT 3.1.1 (a v5 bridge on
mosquitto 2.0.x loses its remote session), cleansession false, a client id
derived from the device id (never the hostname: cloned SD cards share it),
QoS 1 on every topic line (bridges default to QoS 0), a short keepalive, a
capped restart back-off, and a raised queue limit (the default of 1000 drops
silently). Each bridge forwards exactly `to/<peer>/#` and `from/<self>/#`.

Topology `hub` (docs/scale.md): one bridge, to a clustered broker, listing its
nodes for failover, instead of one bridge per peer; its topic lines come from
topics.hub_routes. The cluster's own side (users, permissions) is rendered by
edge_agent.ops.hubconf from the same device list.

The same module renders the ACL (by username) and the password file, so a
board provisioned by Ansible and a virtual device of the local mesh are
configured by one piece of code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import ConfigError
from edge_agent.wire import topics


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    tls: bool = False
    require_certificate: bool = False
    allow_anonymous: bool = True
    use_identity_as_username: bool = False
    """Take the username from the client certificate's CN (needs require_certificate)."""


@dataclass(frozen=True)
class PeerBroker:
    device: str
    host: str
    port: int


@dataclass(frozen=True)
class TlsFiles:
    cafile: str
    certfile: str
    keyfile: str


@dataclass(frozen=True)
class HubTls:
    """TLS to a cluster that is not ours: its CA (a file, or a folder such as the system's store)
    and, when the cluster asks for one, the board's client certificate."""

    cafile: str = ""
    capath: str = ""
    certfile: str = ""
    keyfile: str = ""


@dataclass(frozen=True)
class HubBridge:
    """The bridge to a clustered broker: its nodes, tried in this order, and this board's login there."""

    nodes: list[tuple[str, int]]
    username: str
    password: str
    round_robin: bool = True
    """Stay on the node that answered after a failover instead of going back to the first."""
    tls: HubTls | None = None
    """TLS to the cluster; None falls back to the spec's tls files (the mesh's own CA)."""


HUB_STATE_TOPIC = f"{topics.NAMESPACE}/local/bridge/hub"
"""Where the board's broker keeps the hub bridge's state, retained: 1 connected, 0 not. Under
local/, which no bridge line forwards and the board's own users may read."""


@dataclass(frozen=True)
class BrokerSpec:
    device: str
    listeners: list[Listener]
    peers: list[PeerBroker]
    persistence_dir: str
    log_file: str = ""
    user: str = ""
    """Unix user mosquitto runs as; needed when it starts as root (else it drops to 'mosquitto')."""
    pid_file: str = ""
    tls: TlsFiles | None = None
    password_file: str = ""
    acl_file: str = ""
    bridge_username: str = ""
    bridge_password: str = ""
    keepalive_s: int = 10
    restart_timeout: tuple[int, int] = (2, 20)
    max_queued_messages: int = 100000
    message_size_limit: int = 1024 * 1024
    autosave_interval_s: int = 10
    extra: list[str] = field(default_factory=list)
    hub: HubBridge | None = None
    """Set for the hub topology: peers must then be empty."""


def render(spec: BrokerSpec) -> str:
    topics.check_device(spec.device)
    lines = [
        f"# mosquitto configuration for device {spec.device}, rendered by edge_agent.ops.brokerconf",
        "per_listener_settings false",
        f"allow_anonymous {'true' if all(li.allow_anonymous for li in spec.listeners) else 'false'}",
        "persistence true",
        f"persistence_location {spec.persistence_dir.rstrip('/')}/",
        f"autosave_interval {spec.autosave_interval_s}",
        "set_tcp_nodelay true",
        f"message_size_limit {spec.message_size_limit}",
        f"max_queued_messages {spec.max_queued_messages}",
        "max_inflight_messages 20",
    ]
    if spec.user:
        lines.append(f"user {spec.user}")
    if spec.pid_file:
        lines.append(f"pid_file {spec.pid_file}")
    if spec.log_file:
        lines += [f"log_dest file {spec.log_file}", "log_type error", "log_type warning",
                  "log_type notice", "log_type information", "connection_messages true"]
    if spec.password_file:
        lines.append(f"password_file {spec.password_file}")
    if spec.acl_file:
        lines.append(f"acl_file {spec.acl_file}")
    for listener in spec.listeners:
        lines += ["", f"listener {listener.port} {listener.host}"]
        if listener.tls:
            if spec.tls is None:
                raise ValueError("a TLS listener needs the spec's tls files")
            lines += [f"cafile {spec.tls.cafile}", f"certfile {spec.tls.certfile}",
                      f"keyfile {spec.tls.keyfile}", "tls_version tlsv1.2",
                      f"require_certificate {'true' if listener.require_certificate else 'false'}"]
            if listener.use_identity_as_username:
                if not listener.require_certificate:
                    raise ValueError("use_identity_as_username needs require_certificate")
                lines.append("use_identity_as_username true")
        elif listener.require_certificate or listener.use_identity_as_username:
            raise ValueError(f"listener {listener.host}:{listener.port} asks for certificates but has no TLS")
    if spec.hub is not None and spec.peers:
        raise ValueError("a board bridges either to its peers (full mesh) or to a hub, not both")
    for peer in spec.peers:
        lines += ["", *_bridge(spec, peer)]
    if spec.hub is not None:
        lines += ["", *_hub_bridge(spec, spec.hub)]
    lines += spec.extra
    return "\n".join(lines) + "\n"


def _bridge(spec: BrokerSpec, peer: PeerBroker) -> list[str]:
    name = f"{spec.device}-to-{topics.check_device(peer.device)}"
    lines = _connection(spec, name, [f"{peer.host}:{peer.port}"], f"bridge-{name}", try_private=True)
    lines += _login(spec, spec.bridge_username, spec.bridge_password)
    lines += [f"topic {pattern} out 1" for pattern in topics.bridge_patterns(spec.device, peer.device)]
    return lines


def _hub_bridge(spec: BrokerSpec, hub: HubBridge) -> list[str]:
    """One bridge to every node of the cluster. No bridge mode (try_private): a cluster speaking
    plain MQTT 3.1.1 refuses that protocol level, and the remapped lines of hub_routes deal with
    its echo instead. The client id has a '.', which no device id has, so the hub's permissions
    can tie sessions to their device (see hubconf)."""
    if not hub.nodes:
        raise ValueError("a hub bridge needs at least one node address")
    addresses = [f"{host}:{port}" for host, port in hub.nodes]
    lines = _connection(spec, f"{spec.device}-to-hub", addresses, hub_client_id(spec.device), try_private=False)
    lines.insert(2, f"round_robin {'true' if hub.round_robin else 'false'}")
    # The state is kept on the board only: a will or notification sent to the cluster would fall
    # outside the board's topic permissions there, and RabbitMQ closes the connection for that.
    at = lines.index("notifications false")
    lines[at:at + 1] = ["notifications true", "notifications_local_only true", f"notification_topic {HUB_STATE_TOPIC}"]
    if hub.tls is None:
        lines += _login(spec, hub.username, hub.password)
    else:
        lines += _login(spec, hub.username, hub.password, tls=False) + _hub_tls(hub.tls)
    for pattern, direction, local, remote in topics.hub_routes(spec.device):
        # mosquitto reads "" as an empty prefix; any other quote would be part of the prefix.
        prefixes = f" {local or EMPTY} {remote or EMPTY}" if local or remote else ""
        lines.append(f"topic {pattern} {direction} 1{prefixes}")
    return lines


EMPTY = '""'


def hub_client_id(device: str) -> str:
    return f"{topics.check_device(device)}.hub"


def _connection(spec: BrokerSpec, name: str, addresses: list[str], client_id: str, try_private: bool) -> list[str]:
    base, cap = spec.restart_timeout
    return [
        f"connection {name}",
        f"address {' '.join(addresses)}",
        f"remote_clientid {client_id}",
        f"local_clientid bridge-local-{name}",
        "bridge_protocol_version mqttv311",
        "cleansession false",
        f"try_private {'true' if try_private else 'false'}",
        "notifications false",
        "start_type automatic",
        f"keepalive_interval {spec.keepalive_s}",
        f"restart_timeout {base} {cap}",
    ]


def _hub_tls(tls: HubTls) -> list[str]:
    if bool(tls.cafile) == bool(tls.capath):
        raise ValueError("TLS to the hub needs either a CA file or a CA folder")
    if bool(tls.certfile) != bool(tls.keyfile):
        raise ValueError("a client certificate for the hub needs both its file and its key")
    lines = [f"bridge_cafile {tls.cafile}" if tls.cafile else f"bridge_capath {tls.capath}"]
    if tls.certfile:
        lines += [f"bridge_certfile {tls.certfile}", f"bridge_keyfile {tls.keyfile}"]
    return [*lines, "bridge_insecure false"]


def _login(spec: BrokerSpec, username: str, password: str, tls: bool = True) -> list[str]:
    lines = [f"remote_username {username}"] if username else []
    if password:
        lines.append(f"remote_password {password}")
    if tls and spec.tls is not None:
        lines += [f"bridge_cafile {spec.tls.cafile}", f"bridge_certfile {spec.tls.certfile}",
                  f"bridge_keyfile {spec.tls.keyfile}", "bridge_insecure false"]
    return lines


def render_acl(device: str, peers: Sequence[str], local_users: Sequence[str] = ()) -> str:
    """ACL for device's broker, by username (client ids are not authenticated).

    A peer's bridge logs in with the peer's device id and may only deliver what
    is addressed to this device (task, result, submit, answer) and publish its
    own status and progress; it reads nothing here. The local agent and local
    users (same rights) read this device's addressed topics and everyone's
    status and progress, publish as this device only, and address work,
    results, prompts and answers to any device.
    """
    ns = topics.NAMESPACE
    topics.check_device(device)
    lines = [f"# ACL for the broker of device {device}, rendered by edge_agent.ops.brokerconf"]
    for peer in peers:
        if topics.check_device(peer) == device:
            raise ValueError(f"device {device} cannot be its own peer")
        lines += ["", f"user {peer}",
                  f"topic write {ns}/to/{device}/task", f"topic write {ns}/to/{device}/result",
                  f"topic write {ns}/to/{device}/submit", f"topic write {ns}/to/{device}/answer/+",
                  f"topic write {ns}/from/{peer}/#"]
    for user in [device, *local_users]:
        lines += ["", f"user {user}",
                  f"topic readwrite {ns}/to/{device}/#",
                  f"topic read {ns}/from/+/status", f"topic read {ns}/from/+/progress",
                  f"topic write {ns}/from/{device}/#",
                  f"topic write {ns}/to/+/task", f"topic write {ns}/to/+/result",
                  f"topic write {ns}/to/+/submit", f"topic write {ns}/to/+/answer/+",
                  f"topic readwrite {ns}/local/#"]
    return "\n".join(lines) + "\n"


PASSWORD_ITERATIONS = 1000
_SALT_BYTES = 12


def password_line(user: str, password: str, iterations: int = PASSWORD_ITERATIONS) -> str:
    """One mosquitto password-file line (PBKDF2-SHA512, the `$7$` format of mosquitto 2.x).

    The salt is derived from the user and the password instead of drawn at
    random, so rendering the same credentials twice gives the same file and a
    deployment that changed nothing restarts nothing. It stays unique per user,
    which is what a salt is for; a new password gives a new salt.
    """
    if not user or ":" in user or "\n" in user:
        raise ValueError(f"invalid broker username {user!r}")
    if not password or "\n" in password:
        raise ValueError(f"user {user!r} needs a non-empty one-line password")
    salt = hmac.new(password.encode(), b"dmoa-mosquitto-salt\0" + user.encode(), hashlib.sha512).digest()
    salt = salt[:_SALT_BYTES]
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"{user}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def render_passwords(users: Mapping[str, str], iterations: int = PASSWORD_ITERATIONS) -> str:
    """A mosquitto password file for users (username -> password), sorted by username."""
    return "".join(password_line(u, users[u], iterations) + "\n" for u in sorted(users))


def check_password(line: str, password: str) -> bool:
    """True when password matches a `$7$` password-file line."""
    _user, _, stored = line.strip().partition(":")
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(digest))
    return hmac.compare_digest(got, digest)


def spec_from(data: dict[str, Any]) -> BrokerSpec:
    try:
        tls = data.pop("tls", None)
        hub = data.pop("hub", None)
        return BrokerSpec(
            listeners=[Listener(**li) for li in data.pop("listeners")],
            peers=[PeerBroker(**p) for p in data.pop("peers", [])],
            tls=TlsFiles(**tls) if tls else None,
            hub=_hub_from(hub) if hub else None,
            restart_timeout=_pair(data.pop("restart_timeout", (2, 20))),
            **data,
        )
    except (TypeError, KeyError, ValueError) as err:
        raise ConfigError(f"invalid broker spec: {err}") from None


def _pair(value: Any) -> tuple[int, int]:
    first, second = value
    return int(first), int(second)


def _hub_from(data: dict[str, Any]) -> HubBridge:
    """The `hub` mapping of a spec: nodes as "host:port" strings, username, password and, for TLS
    to the cluster, `tls: {cafile or capath, certfile, keyfile}`."""
    nodes = []
    for address in data.pop("nodes"):
        host, sep, port = str(address).rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"invalid hub node address {address!r}: expected host:port")
        nodes.append((host, int(port)))
    tls = data.pop("tls", None)
    return HubBridge(nodes=nodes, tls=HubTls(**tls) if tls else None, **data)
