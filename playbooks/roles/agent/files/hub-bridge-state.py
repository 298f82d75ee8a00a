"""Print the state of the board's bridge to the hub as its broker keeps it (retained, under local/):
1 connected, 0 not, none when the broker has no state for it yet.

Usage: hub-bridge-state.py HOST PORT USERNAME PASSWORD_FILE TOPIC
Runs with the agent's venv python (paho-mqtt); exits 2 when the broker cannot be read."""

from __future__ import annotations

import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main(host: str, port: str, username: str, password_file: str, topic: str) -> int:
    with open(password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    got: list[bytes] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{username}-hub-check", protocol=mqtt.MQTTv311)
    client.username_pw_set(username, password)
    client.on_connect = lambda c, _u, _f, reason, _p: done.set() if reason.is_failure else c.subscribe(topic, 1)
    # The retained state arrives right after the SUBACK; no message by then means no state.
    client.on_subscribe = lambda c, _u, _m, _r, _p: threading.Timer(1.0, done.set).start()
    client.on_message = lambda _c, _u, message: (got.append(message.payload), done.set())
    try:
        client.connect(host, int(port), keepalive=10)
    except OSError as err:
        print(f"cannot reach the broker at {host}:{port}: {err}", file=sys.stderr)
        return 2
    client.loop_start()
    try:
        if not done.wait(10):
            print("the broker did not answer", file=sys.stderr)
            return 2
    finally:
        client.disconnect()
        client.loop_stop()
    print(got[0].decode(errors="replace") if got else "none")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
