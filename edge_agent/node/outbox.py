"""Publishing what must not be lost: every row of the store's outbox is published until the
broker acknowledges it (PUBACK), then deleted. After a restart the whole outbox is published
again; receivers deduplicate by id.

One thread publishes, woken by an event: the store sets it when a commit queued a message, the
MQTT client when the broker acknowledged a row or the link came back. Nothing else publishes the
outbox, so no step of a job waits for a tick. Notices (progress events: not kept) go out
through the same thread after the rows committed before them: a "dispatched" event never
overtakes the tasks it announces.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge_agent.node.store import Store
from edge_agent.wire.mqtt import MeshClient

# Unwoken, the publisher still looks every so often: a safety net, not the path.
IDLE_S = 2.0


class Outbox:
    def __init__(self, store: Store, client: MeshClient) -> None:
        self._store = store
        self._client = client
        self._lock = threading.Lock()
        self._inflight: dict[int, mqtt.MQTTMessageInfo] = {}
        self._mids: set[int] = set()
        """paho's message ids of the rows in flight."""
        self._publishing = False
        self._notices: deque[tuple[str, bytes]] = deque()
        self.wake = store.outbox_ready

    def notify(self, topic: str, payload: bytes) -> None:
        """Publish after what the outbox holds now; dropped if the link is down. QoS 1 all the same
        (docs/protocol.md, "Why QoS 1 for statuses"): a QoS 0 message would hold up the task
        behind it on the bridge."""
        self._notices.append((topic, payload))
        self.wake.set()

    def acknowledged(self, mid: int) -> None:
        """The broker acknowledged a publish (paho's thread). Only a row of the outbox wakes the
        publisher: statuses and progress events are acknowledged too, and a look at the store for
        each of them would take the store's lock while a job's next step needs it."""
        if self._publishing or mid in self._mids:  # publishing: the PUBACK may beat the mid's entry
            self.wake.set()

    def flush(self) -> None:
        """Publish the rows not yet in flight, then forget the acknowledged ones.

        New rows first: they are a job's next step, the deletion is housekeeping. Acknowledgement
        is read from the message info rather than in on_publish so that no lock is ever held
        across paho's own locks.
        """
        with self._lock:
            if not self._client.connected:
                self._notices.clear()
                return  # publishing now would only pile copies into paho's memory
            acknowledged = []
            for outbox_id, info in list(self._inflight.items()):
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    # Handed over while the link was down: publish it again now that it is
                    # up (paho may also resend its own copy; receivers deduplicate).
                    self._forget(outbox_id)
                elif info.is_published():
                    acknowledged.append(outbox_id)
                    self._forget(outbox_id)
            self._publishing = True
            try:
                for outbox_id, topic, payload, retain in self._store.outbox(
                        skip={*self._inflight, *acknowledged}):
                    info = self._client.publish(topic, payload, qos=1, retain=retain)
                    self._inflight[outbox_id] = info
                    self._mids.add(info.mid)
            finally:
                self._publishing = False
            while self._notices:
                topic, payload = self._notices.popleft()
                self._client.publish(topic, payload, qos=1)
            if acknowledged:
                self._store.outbox_done(*acknowledged)

    def _forget(self, outbox_id: int) -> None:
        self._mids.discard(self._inflight.pop(outbox_id).mid)

    def pending(self) -> int:
        with self._lock:
            return len(self._inflight)

    def run(self, stop: threading.Event, failed: Callable[[Exception], bool]) -> None:
        """Publish whenever woken, until stop; failed(err) says whether to go on after an error."""
        while not stop.is_set():
            self.wake.wait(IDLE_S)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                self.flush()
            except Exception as err:
                if not failed(err):
                    return
