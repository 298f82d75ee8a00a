"""Publishing what must not be lost: every row of the store's outbox is published
until the broker acknowledges it (PUBACK), then deleted. After a restart the
whole outbox is published again; receivers deduplicate by id."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from edge_agent.node.store import Store
from edge_agent.wire.mqtt import MeshClient


class Outbox:
    def __init__(self, store: Store, client: MeshClient) -> None:
        self._store = store
        self._client = client
        self._lock = threading.Lock()
        self._inflight: dict[int, mqtt.MQTTMessageInfo] = {}

    def flush(self) -> None:
        """Publish rows not yet in flight and forget the acknowledged ones.

        Acknowledgement is read from the message info rather than on_publish so
        that no lock is ever held across paho's own locks.
        """
        with self._lock:
            if not self._client.connected:
                return  # publishing now would only pile copies into paho's memory
            for outbox_id, info in list(self._inflight.items()):
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    # Handed over while the link was down: publish it again now that it is
                    # up (paho may also resend its own copy; receivers deduplicate).
                    del self._inflight[outbox_id]
                elif info.is_published():
                    self._store.outbox_done(outbox_id)
                    del self._inflight[outbox_id]
            for outbox_id, topic, payload, retain in self._store.outbox():
                if outbox_id not in self._inflight:
                    self._inflight[outbox_id] = self._client.publish(topic, payload, qos=1, retain=retain)

    def pending(self) -> int:
        with self._lock:
            return len(self._inflight)
