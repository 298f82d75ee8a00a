"""The outbox against a stand-in for the paho client: what is published, when it is forgotten."""

import paho.mqtt.client as mqtt

from edge_agent.node.outbox import Outbox
from edge_agent.node.store import Store


class Info:
    def __init__(self, rc, mid):
        self.rc = rc
        self.mid = mid
        self.acked = False

    def is_published(self):
        if self.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError("paho raises for failed publishes")
        return self.acked


class Client:
    def __init__(self):
        self.connected = True
        self.rc = mqtt.MQTT_ERR_SUCCESS
        self.sent = []

    def publish(self, topic, payload, qos, retain=False):
        info = Info(self.rc, len(self.sent) + 1)
        self.sent.append((topic, info))
        return info


def test_rows_stay_until_acknowledged_and_are_published_once_meanwhile(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    store.add_outbox("t/1", b"a")
    outbox.flush()
    outbox.flush()
    assert [t for t, _ in client.sent] == ["t/1"], "in flight: not published again"
    client.sent[0][1].acked = True
    outbox.flush()
    assert store.outbox() == []


def test_nothing_is_published_while_the_link_is_down_and_failed_publishes_are_retried(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    store.add_outbox("t/1", b"a")
    client.rc = mqtt.MQTT_ERR_NO_CONN  # the link dropped between the check and the publish
    outbox.flush()
    client.connected = False
    outbox.flush()
    assert len(client.sent) == 1
    client.connected, client.rc = True, mqtt.MQTT_ERR_SUCCESS
    outbox.flush()
    assert len(client.sent) == 2 and client.sent[1][1].rc == mqtt.MQTT_ERR_SUCCESS
    assert len(store.outbox()) == 1, "kept until acknowledged"


def test_an_acknowledged_row_is_deleted_and_not_published_again_beside_a_new_one(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    store.add_outbox("t/1", b"a")
    outbox.flush()
    client.sent[0][1].acked = True
    store.add_outbox("t/2", b"b")
    outbox.flush()
    assert [t for t, _ in client.sent] == ["t/1", "t/2"]
    assert [topic for _, topic, _, _ in store.outbox()] == ["t/2"]


def test_only_the_acknowledgement_of_a_row_wakes_the_publisher(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    store.add_outbox("t/1", b"a")
    outbox.flush()
    outbox.notify("progress", b"p")
    outbox.flush()
    notice_mid, row_mid = client.sent[1][1].mid, client.sent[0][1].mid
    outbox.wake.clear()
    outbox.acknowledged(notice_mid)
    assert not outbox.wake.is_set(), "a progress event's PUBACK needs no look at the store"
    outbox.acknowledged(row_mid)
    assert outbox.wake.is_set()
