"""The outbox against a stand-in for the paho client: what is published, when, and when it is
forgotten."""

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

    def topics(self):
        return [topic for topic, _ in self.sent]


def test_a_steps_messages_leave_with_its_commit_without_a_sweep(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    Outbox(store, client)
    with store.transaction():
        store.add_outbox("t/1", b"a")
        store.add_outbox("t/2", b"b")
        assert client.sent == [], "nothing leaves before the commit"
    assert client.topics() == ["t/1", "t/2"], "both, in order, on the committing thread"


def test_a_rolled_back_step_sends_nothing(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    try:
        with store.transaction():
            store.add_outbox("t/1", b"a")
            raise RuntimeError("the step fails")
    except RuntimeError:
        pass
    outbox.flush()
    assert client.sent == [] and store.outbox() == []


def test_rows_stay_until_acknowledged_and_are_published_once_meanwhile(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    store.add_outbox("t/1", b"a")
    outbox.flush()
    outbox.flush()
    assert client.topics() == ["t/1"], "in flight: not published again"
    assert len(store.outbox()) == 1
    client.sent[0][1].acked = True
    outbox.flush()
    assert store.outbox() == []


def test_rows_committed_while_the_link_is_down_go_out_once_it_is_back(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    client.connected = False
    store.add_outbox("t/1", b"a")
    outbox.notify("progress", b"p")
    outbox.flush()
    assert client.sent == [], "nothing is handed to paho while the link is down"
    client.connected = True
    outbox.republish()
    assert outbox.wake.is_set()
    outbox.flush()
    outbox.flush()
    assert client.topics() == ["t/1"], "the row once; the progress event was dropped"


def test_a_publish_that_failed_is_published_again_and_kept_until_acknowledged(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    outbox.flush()  # the first sweep, which reads the whole store, is done
    client.rc = mqtt.MQTT_ERR_NO_CONN  # the link dropped between the check and the publish
    store.add_outbox("t/1", b"a")
    client.rc = mqtt.MQTT_ERR_SUCCESS
    outbox.flush()
    assert len(client.sent) == 2 and client.sent[1][1].rc == mqtt.MQTT_ERR_SUCCESS
    assert len(store.outbox()) == 1, "kept until acknowledged"


def test_what_was_in_the_store_before_the_start_goes_out_at_the_first_sweep(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    store.add_outbox("t/old", b"a")  # left by the last run
    outbox = Outbox(store, client)
    store.add_outbox("t/new", b"b")
    outbox.flush()
    outbox.flush()
    assert client.topics() == ["t/new", "t/old"], "each once"


def test_a_progress_event_never_overtakes_the_rows_committed_before_it(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)
    store.publish_with(lambda: None)  # the committing thread has not published its rows yet ...
    store.add_outbox("t/task", b"a")
    outbox.notify("progress", b"dispatched")  # ... when another thread sends an event
    assert client.topics() == ["t/task", "progress"]


def test_a_failure_to_publish_never_reaches_the_step_that_committed(tmp_path):
    store, client = Store(tmp_path / "a.db"), Client()
    outbox = Outbox(store, client)

    def broken(*args, **kwargs):
        raise ValueError("paho refused the message")

    client.publish = broken
    store.add_outbox("t/1", b"a")  # committed; must not raise
    assert outbox.wake.is_set(), "the publisher is woken to try again from the store"
    assert len(store.outbox()) == 1
