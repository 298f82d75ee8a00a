"""The MQTT side of a device or an observer: one paho client, used the way paho documents.

Callbacks run on paho's network thread: handlers must only validate, store
and hand work on, never infer or block. Subscriptions are made in on_connect
so a reconnect restores them; paho's own loop does the reconnecting.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.errors import MeshError, ProtocolError, StorageError

log = logging.getLogger(__name__)

Handler = Callable[[mqtt.MQTTMessage], None]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int = 1883

    @classmethod
    def parse(cls, text: str, default_port: int = 1883) -> BrokerAddress:
        host, sep, port = text.rpartition(":")
        if not sep:
            return cls(text, default_port)
        try:
            return cls(host, int(port))
        except ValueError:
            raise MeshError(f"invalid broker address {text!r}: expected HOST:PORT") from None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""


class MeshClient:
    def __init__(
        self,
        client_id: str,
        broker: BrokerAddress,
        *,
        credentials: Credentials = Credentials(),
        keepalive_s: int = 10,
        persistent_session: bool = False,
        manual_ack: bool = False,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.broker = broker
        self.keepalive_s = keepalive_s
        self._routes: list[tuple[str, int]] = []
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self.on_connected: Callable[[], None] | None = None
        self.on_storage_failure: Callable[[StorageError, Callable[[], None]], None] | None = None
        """Called with the failure and a retry: delivering the message again, later."""
        self.on_poison: Callable[[mqtt.MQTTMessage, Exception], None] | None = None
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not persistent_session,
            protocol=mqtt.MQTTv311,
            manual_ack=manual_ack,
        )
        self.manual_ack = manual_ack
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.max_queued_messages_set(0)
        if credentials.username:
            self._client.username_pw_set(credentials.username, credentials.password or None)
        if credentials.tls_ca:
            self._client.tls_set(
                ca_certs=credentials.tls_ca,
                certfile=credentials.tls_cert or None,
                keyfile=credentials.tls_key or None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    # -- routing ----------------------------------------------------------------------
    def route(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Call handler for messages matching topic_filter; subscribed on every connect.

        What a handler raises decides the message's fate. A StorageError leaves it
        unacknowledged, for the broker to hand back once storage works again, and calls
        on_storage_failure. Anything else is about the message (malformed, or a bug it
        trips): it goes to on_poison and is acknowledged, so no message can stop a device
        and come back at every restart.
        """
        self._routes.append((topic_filter, qos))
        self._client.message_callback_add(topic_filter, lambda _c, _u, message: self.deliver(handler, message))
        if self._connected.is_set():
            self._client.subscribe(topic_filter, qos)

    def deliver(self, handler: Handler, message: mqtt.MQTTMessage) -> None:
        """Run handler on one message and acknowledge it, or not, by what it raised."""
        try:
            handler(message)
        except StorageError as err:
            self._storage_failed(handler, message, err)
            return
        except ProtocolError as err:
            log.warning("rejected a message on %s: %s", message.topic, err)
        except Exception as err:
            log.exception("handler for %s failed on a message; it is dead-lettered", message.topic)
            if self.on_poison is not None:
                try:
                    self.on_poison(message, err)
                except StorageError as failure:
                    self._storage_failed(handler, message, failure)
                    return
        self.ack(message)

    def _storage_failed(self, handler: Handler, message: mqtt.MQTTMessage, err: StorageError) -> None:
        log.error("message on %s left unacknowledged for redelivery: %s", message.topic, err)
        if self.on_storage_failure is not None:
            self.on_storage_failure(err, lambda: self.deliver(handler, message))

    def ack(self, message: mqtt.MQTTMessage) -> None:
        if self.manual_ack and message.qos > 0:
            self._client.ack(message.mid, message.qos)

    # -- connection -------------------------------------------------------------------
    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect and start paho's loop; raise MeshError if the broker does not accept us in time."""
        try:
            # A blocking first connect reports "refused" at once; paho's loop then
            # takes over and reconnects by itself whenever the link drops.
            self._client.connect(self.broker.host, self.broker.port, keepalive=self.keepalive_s)
        except (OSError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise MeshError(f"cannot reach broker {self.broker}: {reason}") from None
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            reason = self._connect_error or "no answer"
            self.close()
            raise MeshError(f"cannot reach broker {self.broker}: {reason} after {timeout_s:.0f} s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._connect_error = f"refused ({reason})"
            log.warning("broker %s refused the connection: %s", self.broker, reason)
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # paho leaves Nagle's algorithm on: a small publish then waits for the ACK of the one
            # before, which Linux delays up to 40 ms. Every hop of a job is a small publish.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for topic_filter, qos in self._routes:
            client.subscribe(topic_filter, qos)
        self._connected.set()
        if self.on_connected is not None:
            self.on_connected()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.info("lost broker %s (%s); paho reconnects", self.broker, reason)

    # -- publishing -------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self._client.publish(topic, payload, qos=qos, retain=retain)
