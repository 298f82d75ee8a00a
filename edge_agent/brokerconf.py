"""The one generator of mosquitto configuration, for the local mesh and for Ansible alike.

Per bridge (see docs/architecture.md for the reasons): MQTT 3.1.1 (a v5 bridge on
mosquitto 2.0.x loses its remote session), cleansession false, a client id
derived from the device id (never the hostname: cloned SD cards share it),
QoS 1 on every topic line (bridges default to QoS 0), a short keepalive, a
capped restart back-off, and a raised queue limit (the default of 1000 drops
silently). Each bridge forwards exactly `to/<peer>/#` and `from/<self>/#`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent import topics


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    tls: bool = False
    require_certificate: bool = False
    allow_anonymous: bool = True


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


def render(spec: BrokerSpec) -> str:
    topics.check_device(spec.device)
    lines = [
        f"# mosquitto configuration for device {spec.device}, rendered by edge_agent.brokerconf",
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
    for peer in spec.peers:
        lines += ["", *_bridge(spec, peer)]
    lines += spec.extra
    return "\n".join(lines) + "\n"


def _bridge(spec: BrokerSpec, peer: PeerBroker) -> list[str]:
    name = f"{spec.device}-to-{topics.check_device(peer.device)}"
    base, cap = spec.restart_timeout
    lines = [
        f"connection {name}",
        f"address {peer.host}:{peer.port}",
        f"remote_clientid bridge-{name}",
        f"local_clientid bridge-local-{name}",
        "bridge_protocol_version mqttv311",
        "cleansession false",
        "try_private true",
        "notifications false",
        "start_type automatic",
        f"keepalive_interval {spec.keepalive_s}",
        f"restart_timeout {base} {cap}",
    ]
    if spec.bridge_username:
        lines.append(f"remote_username {spec.bridge_username}")
    if spec.bridge_password:
        lines.append(f"remote_password {spec.bridge_password}")
    if spec.tls is not None:
        lines += [f"bridge_cafile {spec.tls.cafile}", f"bridge_certfile {spec.tls.certfile}",
                  f"bridge_keyfile {spec.tls.keyfile}", "bridge_insecure false"]
    lines += [f"topic {pattern} out 1" for pattern in topics.bridge_patterns(spec.device, peer.device)]
    return lines


def render_acl(device: str, peers: list[str], local_users: list[str] = ()) -> str:  # type: ignore[assignment]
    """ACL for device's broker, by username: each peer (its bridge logs in with the peer's
    device id) may only deliver work addressed to this device and publish its own
    status/progress; the local agent and local users own this device's topics."""
    ns = topics.NAMESPACE
    lines = [f"# ACL for the broker of device {device}, rendered by edge_agent.brokerconf"]
    for peer in peers:
        lines += ["", f"user {topics.check_device(peer)}",
                  f"topic write {ns}/to/{device}/task", f"topic write {ns}/to/{device}/result",
                  f"topic write {ns}/from/{peer}/#"]
    for user in [device, *local_users]:
        lines += ["", f"user {user}",
                  f"topic readwrite {ns}/to/{device}/#", f"topic read {ns}/from/+/#",
                  f"topic write {ns}/from/{device}/#", f"topic write {ns}/to/+/task",
                  f"topic write {ns}/to/+/result", f"topic readwrite {ns}/local/#"]
    return "\n".join(lines) + "\n"
