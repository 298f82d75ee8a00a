"""The hub's side of the hub topology: RabbitMQ's MQTT plugin on a cluster (see docs/scale.md).

Rendered from the same device list as the boards' bridges (brokerconf.HubBridge):

- users and passwords (RabbitMQ's salted SHA-256 hashes), one per device, the device id as username;
- permissions: a device may only declare and use the session queues of its own client ids
  (`<device>.<anything>`: the '.' is in no device id, so `edge-1` cannot take `edge-10`'s session);
- topic permissions on the MQTT exchange, which RabbitMQ checks on every publish and subscribe
  (MQTT's '/' is '.' there, '+' is '*'): a device publishes only as itself (`from/<self>/…`),
  addresses anything to anyone (`to/…`, as a full mesh's bridges forward it), and reads only
  its own `to/` topics and everyone's `from/` (status and progress). Refused publishes and
  subscriptions make RabbitMQ close the connection and log the refusal;
- rabbitmq.conf for each node: MQTT only (plain, or TLS only), on one loopback or LAN address, quorum queues for
  persistent sessions (replicated: a bridge's session survives the loss of its node), no
  anonymous login and no default guest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_agent.wire import topics

_NS = topics.NAMESPACE.replace("/", r"\.")


@dataclass(frozen=True)
class HubNode:
    name: str
    """Erlang node name, e.g. hub-1@127.0.70.1"""
    host: str
    mqtt_port: int


@dataclass(frozen=True)
class NodeTls:
    """A node's TLS listener: its certificate, and the CAs it trusts for the clients' certificates."""

    cacertfile: str
    certfile: str
    keyfile: str
    require_client_certificate: bool = False


def password_hash(user: str, password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)), 4-byte salt.

    The salt is derived from the user and password, as for mosquitto (brokerconf.password_line):
    the same credentials render the same definitions."""
    salt = hmac.new(password.encode(), b"dmoa-rabbitmq-salt\0" + user.encode(), hashlib.sha256).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def topic_permissions(device: str) -> dict[str, str]:
    d = topics.check_device(device)
    # Exactly what the bridge forwards out (topics.hub_routes), no less: RabbitMQ answers a refused
    # publish by closing the connection, and the bridge would send the same message again, forever.
    write = rf"^{_NS}\.(from\.{d}\..+|self\.{d}\..+|to\.[^.]+\..+)$"
    # What the bridge subscribes to: anything under its own `to/`, and everyone's `from/`.
    read = rf"^{_NS}\.(to\.{d}\..+|from\..+)$"
    return {"user": d, "vhost": "/", "exchange": "amq.topic", "write": write, "read": read}


def definitions(credentials: Mapping[str, str]) -> dict[str, Any]:
    """RabbitMQ definitions (users, permissions, topic permissions) for devices -> passwords."""
    users, permissions, topic_perms = [], [], []
    for device in sorted(credentials):
        topics.check_device(device)
        users.append({"name": device, "password_hash": password_hash(device, credentials[device]),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
        own_queues = rf"mqtt-subscription-{device}\..*"
        permissions.append({"user": device, "vhost": "/", "configure": rf"^{own_queues}$",
                            "write": rf"^(amq\.topic|{own_queues})$", "read": rf"^(amq\.topic|{own_queues})$"})
        topic_perms.append(topic_permissions(device))
    return {"users": users, "vhosts": [{"name": "/"}], "permissions": permissions,
            "topic_permissions": topic_perms}


def render_definitions(credentials: Mapping[str, str]) -> str:
    return json.dumps(definitions(credentials), indent=2) + "\n"


def render_node_conf(node: HubNode, cluster: list[HubNode], definitions_file: str, admin_password: str,
                     tls: NodeTls | None = None) -> str:
    """rabbitmq.conf for one node of the cluster; with tls, its MQTT port speaks TLS only."""
    if tls is None:
        mqtt_listener = [f"mqtt.listeners.tcp.1 = {node.host}:{node.mqtt_port}"]
    else:
        verify = tls.require_client_certificate
        mqtt_listener = [
            "mqtt.listeners.tcp = none",
            f"mqtt.listeners.ssl.1 = {node.host}:{node.mqtt_port}",
            f"ssl_options.cacertfile = {tls.cacertfile}",
            f"ssl_options.certfile = {tls.certfile}",
            f"ssl_options.keyfile = {tls.keyfile}",
            f"ssl_options.verify = {'verify_peer' if verify else 'verify_none'}",
            f"ssl_options.fail_if_no_peer_cert = {'true' if verify else 'false'}",
            "ssl_options.versions.1 = tlsv1.3",
            "ssl_options.versions.2 = tlsv1.2",
        ]
    lines = [
        f"# RabbitMQ node {node.name} of the dmoa hub, rendered by edge_agent.ops.hubconf",
        "listeners.tcp = none",
        *mqtt_listener,
        "mqtt.allow_anonymous = false",
        "mqtt.vhost = /",
        "mqtt.exchange = amq.topic",
        "mqtt.durable_queue_type = quorum",
        "mqtt.tcp_listen_options.nodelay = true",
        "mqtt.prefetch = 100",
        # A board's session outlives a long outage of the board (the default is one day).
        "mqtt.subscription_ttl = 604800000",
        f"load_definitions = {definitions_file}",
        # Never the default guest/guest: an unused administrator with a random password instead.
        "default_user = hub-admin",
        f"default_pass = {admin_password}",
        "loopback_users = none",
        "cluster_partition_handling = pause_minority",
        "cluster_formation.peer_discovery_backend = classic_config",
        *[f"cluster_formation.classic_config.nodes.{i} = {n.name}" for i, n in enumerate(cluster, 1)],
        "log.console = false",
        "log.file.level = info",
    ]
    return "\n".join(lines) + "\n"
