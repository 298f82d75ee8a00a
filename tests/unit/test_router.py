"""What a message handler raises decides the message's fate (MeshClient.route): no message can stop
a device and come back at every restart, and a storage failure leaves its message with the broker."""

import paho.mqtt.client as mqtt
import pytest

from edge_agent.errors import ProtocolError, StorageError
from edge_agent.wire.mqtt import BrokerAddress, MeshClient


class Recorder:
    def __init__(self) -> None:
        self.client = MeshClient("router-test", BrokerAddress("127.0.0.1", 1), manual_ack=True)
        self.acked: list[int] = []
        self.poisoned: list[tuple[str, str]] = []
        self.storage: list[StorageError] = []
        self.client.ack = lambda message: self.acked.append(message.mid)  # type: ignore[method-assign]
        self.client.on_poison = lambda message, err: self.poisoned.append((message.topic, str(err)))
        self.retries: list = []
        self.client.on_storage_failure = lambda err, retry: (self.storage.append(err), self.retries.append(retry))

    def deliver(self, error: Exception | None, mid: int = 1) -> None:
        def handler(message: mqtt.MQTTMessage) -> None:
            if error is not None:
                raise error

        message = mqtt.MQTTMessage(mid=mid, topic=b"dmoa/v1/to/edge-1/task")
        message.qos = 1
        self.client.deliver(handler, message)


def test_a_handled_message_is_acknowledged():
    r = Recorder()
    r.deliver(None)
    assert (r.acked, r.poisoned, r.storage) == ([1], [], [])


def test_a_malformed_message_is_acknowledged_without_dead_lettering():
    r = Recorder()
    r.deliver(ProtocolError("not UTF-8 JSON"))
    assert (r.acked, r.poisoned, r.storage) == ([1], [], [])


@pytest.mark.parametrize("error", [RuntimeError("a bug"), KeyError("job"), ValueError("bad"),
                                   RecursionError("deep")])
def test_any_other_error_is_dead_lettered_and_acknowledged(error):
    r = Recorder()
    r.deliver(error)
    assert r.acked == [1] and r.storage == []
    assert r.poisoned == [("dmoa/v1/to/edge-1/task", str(error))]


def test_a_storage_failure_leaves_the_message_unacknowledged_and_stops():
    r = Recorder()
    failure = StorageError("the store failed: database or disk is full")
    r.deliver(failure)
    assert (r.acked, r.poisoned, r.storage) == ([], [], [failure])


def test_a_message_left_by_a_storage_failure_can_be_delivered_again_later():
    r = Recorder()
    failures = [StorageError("the store's disk is full")]

    def handler(message):
        if failures:
            raise failures.pop()

    message = mqtt.MQTTMessage(mid=7, topic=b"dmoa/v1/to/edge-1/result")
    message.qos = 1
    r.client.deliver(handler, message)
    assert r.acked == [] and len(r.retries) == 1
    r.retries[0]()
    assert r.acked == [7], "acknowledged once the retry went through"


def test_a_dead_letter_that_cannot_be_stored_is_a_storage_failure():
    r = Recorder()
    failure = StorageError("the store failed: disk I/O error")

    def cannot_store(message, err):
        raise failure

    r.client.on_poison = cannot_store
    r.deliver(RuntimeError("a bug"))
    assert (r.acked, r.storage) == ([], [failure])
