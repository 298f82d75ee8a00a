"""The outbox against a stand-in for the paho client: what is published, when it is forgotten."""

import paho.mqtt.client as mqtt

from edge_agent.node.outbox import Outbox
from edge_agent.node.store import Store


class Info:
    def __init__(self, rc):
        self.rc = rc
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

    def publish(self, topic, payload, qos, retain):
        info = Info(self.rc)
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
