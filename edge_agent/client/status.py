"""Reading the mesh's retained statuses from any broker, for one-shot commands."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import asdict
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.errors import ProtocolError
from edge_agent.wire import topics
from edge_agent.wire.messages import Status, decode
from edge_agent.wire.mqtt import BrokerAddress, Credentials, MeshClient

_counter = itertools.count()


def observer_id(kind: str) -> str:
    return f"{kind}-{os.getpid()}-{next(_counter)}-{int(time.time() * 1000) % 100000}"


def read_statuses(host: str, port: int, wait_s: float = 1.0,
                  credentials: Credentials = Credentials()) -> list[dict[str, Any]]:
    """Every device's last status on this broker, as dicts, sorted by device id.

    Retained statuses arrive right after subscribing; wait_s bounds the wait.
    Raises MeshError when the broker cannot be reached.
    """
    found: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    client = MeshClient(observer_id("status"), BrokerAddress(host, port), credentials=credentials)

    def on_status(message: mqtt.MQTTMessage) -> None:
        try:
            status = decode(message.payload, Status)
        except ProtocolError:
            return
        with lock:
            found[status.device] = {**asdict(status), "retained": bool(message.retain)}

    client.route(topics.ALL_STATUS, on_status)
    client.connect(timeout_s=max(wait_s, 3.0))
    try:
        time.sleep(wait_s)
    finally:
        client.close()
    with lock:
        return [found[d] for d in sorted(found)]
