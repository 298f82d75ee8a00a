"""The hub topology over TLS: a RabbitMQ node that speaks MQTT over TLS only and requires client
certificates, and board brokers bridged to it as the Ansible mesh role renders them (the cluster's
CA, the board's certificate). One node is enough here: clustering and failover are test_hub.py's."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from support.meshes import address_block, need_mosquitto

from edge_agent.ops import brokerconf, hubcluster, hubconf, localmesh

pytestmark = pytest.mark.timeout(300)
BLOCK = address_block()
NODE = f"{BLOCK}.1"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def issue(root: Path, name: str, ca: str, ext: str) -> tuple[Path, Path]:
    """A key and a certificate for name, signed by the CA root/<ca>.crt."""
    key, csr, cert, extfile = (root / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    extfile.write_text(f"basicConstraints = critical, CA:FALSE\n{ext}\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
            "-out", str(csr), "-subj", f"/CN={name}")
    openssl("x509", "-req", "-sha256", "-in", str(csr), "-CA", str(root / f"{ca}.crt"), "-CAkey",
            str(root / f"{ca}.key"), "-CAcreateserial", "-days", "2", "-extfile", str(extfile), "-out", str(cert))
    return cert, key


def make_ca(root: Path, name: str) -> Path:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(root / f"{name}.key"), "-out", str(root / f"{name}.crt"), "-days", "2", "-subj", f"/CN={name}")
    return root / f"{name}.crt"


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory) -> Iterator[tuple[Path, hubcluster.Cluster]]:
    if not (hubcluster.RABBITMQ / "rabbitmq-server").exists():
        pytest.fail("rabbitmq-server is not installed: run `make setup`")
    need_mosquitto()
    root = tmp_path_factory.mktemp("hubtls")
    make_ca(root, "hub-ca")   # the cluster's own CA: its server certificate
    make_ca(root, "mesh-ca")  # the boards' CA: their client certificates
    cert, key = issue(root, "node", "hub-ca", f"extendedKeyUsage = serverAuth\nsubjectAltName = IP:{NODE}")
    for device in ("edge-1", "edge-2"):
        issue(root, device, "mesh-ca", "extendedKeyUsage = clientAuth")
    tls = hubconf.NodeTls(str(root / "mesh-ca.crt"), str(cert), str(key), require_client_certificate=True)
    cluster = hubcluster.start(root / "cluster", 1, BLOCK, {"edge-1": "pw-1", "edge-2": "pw-2"}, timeout_s=180,
                               tls=tls, nodes=[hubcluster.Node(f"hub-1@{NODE}", NODE, 8883, 25701)])
    try:
        yield root, cluster
    finally:
        hubcluster.stop(cluster)


def start_board(root: Path, device: str, host: str, tls: brokerconf.HubTls) -> subprocess.Popen[bytes]:
    """A board's mosquitto with its one bridge, to the TLS node."""
    home = root / device
    home.mkdir(exist_ok=True)
    spec = brokerconf.BrokerSpec(device=device, listeners=[brokerconf.Listener(host, 1883)], peers=[],
                                 persistence_dir=str(home), log_file=str(home / "mosquitto.log"),
                                 user=getpass.getuser(),
                                 hub=brokerconf.HubBridge([(NODE, 8883)], device, f"pw-{device[-1]}", tls=tls))
    (home / "mosquitto.conf").write_text(brokerconf.render(spec))
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-c", str(home / "mosquitto.conf")], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    localmesh.wait_port(host, 1883, broker, home / "mosquitto.log")
    return broker


def bridge_state(host: str, want: bytes, timeout_s: float) -> bytes | None:
    """The hub bridge's state as the board's broker keeps it, once it is `want` or timeout_s passed."""
    seen: list[bytes] = []
    arrived = threading.Condition()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"state-{host}")

    def on_message(_c, _u, message) -> None:
        with arrived:
            seen.append(message.payload)
            arrived.notify_all()
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(brokerconf.HUB_STATE_TOPIC, 1)
    client.connect(host, 1883)
    client.loop_start()
    try:
        with arrived:
            arrived.wait_for(lambda: want in seen, timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return seen[-1] if seen else None


def test_a_board_bridges_to_a_tls_node_with_the_clusters_ca_and_its_certificate_and_not_without(tls_hub):
    root, cluster = tls_hub
    good = brokerconf.HubTls(cafile=str(root / "hub-ca.crt"), certfile=str(root / "edge-1.crt"),
                             keyfile=str(root / "edge-1.key"))
    no_cert = brokerconf.HubTls(cafile=str(root / "hub-ca.crt"))
    boards = [start_board(root, "edge-1", f"{BLOCK}.11", good), start_board(root, "edge-2", f"{BLOCK}.12", no_cert)]
    try:
        # Reachable first: the board with the cluster's CA and its certificate is connected, as the node says too.
        assert bridge_state(f"{BLOCK}.11", b"1", 60) == b"1", (root / "edge-1" / "mosquitto.log").read_text()[-2000:]
        connections = hubcluster.ctl(cluster, cluster.nodes[0], "list_mqtt_connections", "client_id", "user")
        assert "edge-1.hub\tedge-1" in connections
        # The same node refuses the board that presents no certificate: its bridge stays down.
        assert bridge_state(f"{BLOCK}.12", b"1", 15) == b"0"
        assert "edge-2.hub" not in hubcluster.ctl(cluster, cluster.nodes[0], "list_mqtt_connections", "client_id")
    finally:
        for board in boards:
            board.terminate()
        for board in boards:
            try:
                board.wait(10)
            except subprocess.TimeoutExpired:
                board.kill()
                board.wait(5)
