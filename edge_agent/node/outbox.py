"""Publishing what must not be lost: every row of the store's outbox is published until the
broker acknowledges it (PUBACK), then deleted. After a restart or a reconnect the whole outbox
is published again; receivers deduplicate by id.

The thread that commits a step publishes the step's messages itself, right after the commit
(Database.publish_with): a job's next message leaves without waking another thread or reading
the outbox back. Notices (progress events: not kept) go out the same way, after the rows
committed before them, so a "dispatched" event never overtakes the tasks it announces.

The publisher thread does the rest, off a job's path: every IDLE_S, and when woken after a
reconnect, it forgets the acknowledged rows (deleting them in one commit) and publishes again
whatever the store holds that is not in flight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge_agent.node.db import OutboxRow
from edge_agent.node.store import Store
from edge_agent.wire.mqtt import MeshClient

log = logging.getLogger(__name__)
# How often the publisher thread forgets acknowledged rows; nothing on a job's path waits for it.
IDLE_S = 2.0


class Outbox:
    def __init__(self, store: Store, client: MeshClient) -> None:
        self._store = store
        self._client = client
        self._lock = threading.Lock()
        self._inflight: dict[int, mqtt.MQTTMessageInfo] = {}
        self._acknowledged: list[int] = []
        """Rows the broker acknowledged, to delete at the next sweep."""
        self._rescan = True
        """Whether the next sweep publishes everything the store holds (at start, after a reconnect)."""
        self.wake = threading.Event()
        store.publish_with(self.publish_committed)

    def publish_committed(self) -> None:
        """Publish the rows the last commits queued (on the committing thread). Never raises: the
        step is committed, and a row it fails to publish waits in the store for a rescan."""
        try:
            with self._lock:
                self._publish_new()
        except Exception:
            log.exception("publishing a step's messages failed; they go out at the next sweep")
            self.republish()

    def notify(self, topic: str, payload: bytes) -> None:
        """Publish after what the outbox holds now; dropped if the link is down. QoS 1 all the same
        (docs/protocol.md, "Why QoS 1 for statuses"): a QoS 0 message would hold up the task
        behind it on the bridge."""
        try:
            with self._lock:
                self._publish_new()
                if self._client.connected:
                    self._client.publish(topic, payload, qos=1)
        except Exception:
            log.exception("publishing a progress event failed")
            self.republish()

    def republish(self) -> None:
        """Publish again, soon, every row not known to be in flight: the link came back, or a
        publish failed."""
        self._rescan = True
        self.wake.set()

    def flush(self) -> None:
        """Forget the acknowledged rows, deleting them from the store, and publish again those
        whose publish failed, or the whole outbox after republish()."""
        with self._lock:
            if not self._client.connected:
                # Publishing now would only pile copies into paho's memory; once the link is back,
                # the whole outbox goes out again.
                self._rescan = True
                return
            for outbox_id, info in list(self._inflight.items()):
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    # Handed over while the link was down: publish it again now that it is up
                    # (paho may also resend its own copy; receivers deduplicate).
                    del self._inflight[outbox_id]
                    self._rescan = True
                elif info.is_published():
                    del self._inflight[outbox_id]
                    self._acknowledged.append(outbox_id)
            if self._rescan:
                self._rescan = False
                self._store.take_committed()  # the store has them; any committed from now on
                # are read below and handed over too, and then skipped as in flight
                for row in self._store.outbox(skip={*self._inflight, *self._acknowledged}):
                    self._publish(row)
            self._publish_new()
            if self._acknowledged:
                self._store.outbox_done(*self._acknowledged)
                self._acknowledged.clear()

    def _publish_new(self) -> None:
        rows = self._store.take_committed()
        if not self._client.connected:
            self._rescan = True  # they wait in the store for the reconnect
            return
        for row in rows:
            if row[0] not in self._inflight:
                self._publish(row)

    def _publish(self, row: OutboxRow) -> None:
        outbox_id, topic, payload, retain = row
        self._inflight[outbox_id] = self._client.publish(topic, payload, qos=1, retain=retain)

    def run(self, stop: threading.Event, failed: Callable[[Exception], bool]) -> None:
        """Sweep every IDLE_S and whenever woken, until stop; failed(err) says whether to go on
        after an error."""
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
