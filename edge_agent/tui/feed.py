"""The TUI's subscriber: one MQTT connection whose callbacks post messages to the app.

Everything here runs off the UI thread (paho's network thread and one watcher
thread) and touches the app only through post_message, which Textual makes
thread-safe. The watcher connects, keeps retrying while the broker is away,
and reports connection changes; after the first connect paho reconnects by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import paho.mqtt.client as mqtt
from textual.message import Message

from edge_agent.client.status import observer_id
from edge_agent.errors import MeshError, ProtocolError
from edge_agent.tui.messages import ConnectionChanged, IdentityReceived, ProgressReceived, StatusReceived
from edge_agent.wire import topics
from edge_agent.wire.messages import Progress, Status, decode
from edge_agent.wire.mqtt import BrokerAddress, Credentials, MeshClient

ANONYMOUS = Credentials()
"""No login, no TLS: a board's own broker on loopback."""


class Target(Protocol):
    def post_message(self, message: Message) -> bool: ...


def probe(broker: BrokerAddress, credentials: Credentials, timeout_s: float = 5.0) -> None:
    """Connect once and leave; raises MeshError when the broker cannot be reached."""
    client = MeshClient(observer_id("tui-probe"), broker, credentials=credentials)
    client.connect(timeout_s=timeout_s)
    client.close()


class MeshFeed:
    def __init__(self, target: Target, broker: BrokerAddress, credentials: Credentials = ANONYMOUS,
                 clock: Callable[[], float] = time.time, retry_s: float = 2.0) -> None:
        self.target = target
        self.broker = broker
        self.credentials = credentials
        self.clock = clock
        self.retry_s = retry_s
        self.rejected = 0
        """Messages dropped as malformed."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tui-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # -- watcher thread ---------------------------------------------------------------
    def _watch(self) -> None:
        client: MeshClient | None = None
        last: bool | None = None
        while not self._stop.is_set():
            if client is None:
                client = self._client()
                try:
                    client.connect(timeout_s=5.0)
                except MeshError as err:
                    client = None
                    last = False
                    self.target.post_message(ConnectionChanged(False, f"{err}; retrying"))
                    self._stop.wait(self.retry_s)
                    continue
            if client.connected != last:
                last = client.connected
                detail = "" if last else f"lost {self.broker}; reconnecting"
                self.target.post_message(ConnectionChanged(last, detail))
            self._stop.wait(0.2)
        if client is not None:
            client.close()

    def _client(self) -> MeshClient:
        client = MeshClient(observer_id("tui"), self.broker, credentials=self.credentials)
        client.route(topics.ALL_STATUS, self._on_status)
        client.route(topics.ALL_PROGRESS, self._on_progress, qos=0)
        client.route(topics.LOCAL_IDENTITY, self._on_identity)
        return client

    # -- paho network thread ----------------------------------------------------------
    def _on_status(self, message: mqtt.MQTTMessage) -> None:
        if not message.payload:  # a cleared retained status
            return
        try:
            status = decode(bytes(message.payload), Status)
        except ProtocolError:
            self.rejected += 1
            return
        if topics.device_of(message.topic) != status.device:
            self.rejected += 1
            return
        self.target.post_message(StatusReceived(status, self.clock(), bool(message.retain)))

    def _on_progress(self, message: mqtt.MQTTMessage) -> None:
        try:
            progress = decode(bytes(message.payload), Progress)
        except ProtocolError:
            self.rejected += 1
            return
        self.target.post_message(ProgressReceived(progress, self.clock()))

    def _on_identity(self, message: mqtt.MQTTMessage) -> None:
        try:
            device = topics.check_device(message.payload.decode("utf-8", errors="replace").strip())
        except ValueError:
            return
        self.target.post_message(IdentityReceived(device))
