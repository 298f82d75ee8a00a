"""An MQTT client for the tests, connected from inside the lab's bridge namespace (the boards'
network), that reports its acknowledgements as events instead of being waited on with sleeps."""

from __future__ import annotations

import ssl
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from lab.host import inside_netns
from lab.paths import BRIDGE_NS


class Peer:
    def __init__(self, host: str, port: int, username: str | None = None, password: str | None = None,
                 ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                 client_id: str | None = None):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"lab-test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None,
                                keyfile=str(key) if key else None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.answered = threading.Event()
        self.closed = threading.Event()
        """Set when the broker closes the connection (RabbitMQ's answer to a refused subscribe or publish)."""
        self.refusal: str | None = None
        self.received: list[tuple[str, bytes]] = []
        self._arrived = threading.Condition()
        self._subacks: dict[int, threading.Event] = {}
        self.granted: dict[int, list[int]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def connect(self, timeout_s: float = 10.0) -> bool:
        """Whether the broker accepted us (CONNACK success); a refusal's reason lands in self.refusal."""
        try:
            with inside_netns(BRIDGE_NS):
                self.client.connect(self.host, self.port, keepalive=10)
        except (ssl.SSLError, OSError) as err:
            self.refusal = f"{type(err).__name__}: {err}"
            return False
        self.client.loop_start()
        if not self.answered.wait(timeout_s):
            self.refusal = self.refusal or "no CONNACK"
        return self.refusal is None

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
        self.answered.set()

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        self.closed.set()
        if not self.answered.is_set():
            self.refusal = f"disconnected before CONNACK: {reason}"
            self.answered.set()

    def _on_subscribe(self, client, userdata, mid, reasons, props) -> None:
        self.granted[mid] = [r.value for r in reasons]
        self._subacks.setdefault(mid, threading.Event()).set()

    def _on_message(self, client, userdata, message) -> None:
        with self._arrived:
            self.received.append((message.topic, message.payload))
            self._arrived.notify_all()

    def subscribe(self, topic: str, timeout_s: float = 10.0) -> list[int]:
        """Subscribe and wait for the SUBACK; returns the broker's reason codes."""
        result, mid = self.client.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS, result
        event = self._subacks.setdefault(mid, threading.Event())
        assert event.wait(timeout_s), f"no SUBACK for {topic}"
        return self.granted[mid]

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        """Publish at QoS 1 and wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout_s)
        assert info.is_published(), f"no PUBACK for {topic}"

    def wait_for(self, payload: bytes, timeout_s: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: payload in self.payloads(), timeout_s)

    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
