"""A RabbitMQ cluster on the board lab's network, for the hub topology's lab test.

Three nodes on addresses added to the lab's bridge (198.51.100.21-23, beside the control node's .1
and the boards' .11-13), started by edge_agent.ops.hubcluster inside the bridge's network namespace,
so the boards dial them as they would a cluster on their LAN. MQTT over TLS only, with a server
certificate from a CA of the cluster's own (not the mesh CA), and a client certificate required:
the nodes trust the mesh CA for those, as a cluster set up for mutual TLS with the boards would.
The cluster starts with no users; the test imports the definitions the play wrote.
Everything it made (nodes, epmd, addresses) is gone when the context exits.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.ops import hubcluster, hubconf
from lab.host import inside_netns
from lab.paths import BRIDGE, BRIDGE_NS, NETWORK

ADDRESSES = [f"{NETWORK}.{20 + i}" for i in (1, 2, 3)]
PORT = 8883


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def certificates(root: Path, mesh_ca: Path) -> tuple[hubconf.NodeTls, Path]:
    """The cluster's CA and one server certificate naming every node's address; returns the nodes'
    TLS settings and the cluster's CA certificate (what a board must trust)."""
    ca_key, ca, key, csr, cert, ext = (root / n for n in ("ca.key", "ca.crt", "node.key", "node.csr", "node.crt",
                                                            "node.ext"))
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=dmoa lab hub CA")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", "/CN=dmoa lab hub")
    ext.write_text("basicConstraints = critical, CA:FALSE\nextendedKeyUsage = serverAuth\n"
                   f"subjectAltName = {', '.join(f'IP:{a}' for a in ADDRESSES)}\n")
    _openssl("x509", "-req", "-sha256", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(cert))
    trusted = root / "clients-ca.crt"
    trusted.write_text(mesh_ca.read_text())
    return hubconf.NodeTls(str(trusted), str(cert), str(key), require_client_certificate=True), ca


@dataclass
class LabHub:
    root: Path
    ca: Path
    cluster: hubcluster.Cluster | None = None
    error: BaseException | None = None
    _started: threading.Event = field(default_factory=threading.Event)

    @property
    def brokers(self) -> list[str]:
        return [f"{a}:{PORT}" for a in ADDRESSES]

    def wait(self, timeout_s: float) -> hubcluster.Cluster:
        """The running cluster, once every node joined it; raises what stopped it from starting."""
        if not self._started.wait(timeout_s):
            raise TimeoutError(f"the lab's hub did not start within {timeout_s:.0f} s")
        if self.error is not None or self.cluster is None:
            raise RuntimeError(f"the lab's hub did not start: {self.error}; see {self.root}/*.out")
        return self.cluster

    def ctl(self, *args: str) -> str:
        """rabbitmqctl on the first node, from the bridge's namespace where the nodes are."""
        assert self.cluster is not None
        with inside_netns(BRIDGE_NS):
            return hubcluster.ctl(self.cluster, self.cluster.nodes[0], *args)

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.root.glob("hub-*/log/*.log"))

    def _start(self, tls: hubconf.NodeTls, timeout_s: float) -> None:
        nodes = [hubcluster.Node(f"hub-{i}@{a}", a, PORT, 25700 + i) for i, a in enumerate(ADDRESSES, 1)]
        try:
            # Everything the nodes open (listeners, distribution, epmd) is in the bridge's namespace.
            with inside_netns(BRIDGE_NS):
                self.cluster = hubcluster.start(self.root, len(nodes), "", {}, timeout_s=timeout_s, tls=tls,
                                                nodes=nodes)
        except BaseException as err:  # reported by wait(); start() stopped what it had started
            self.error = err
        finally:
            self._started.set()


def _ip(*args: str) -> None:
    subprocess.run(["ip", "-n", BRIDGE_NS, *args], check=True, capture_output=True, timeout=30)


@contextmanager
def lab_hub(root: Path, mesh_ca: Path, timeout_s: float = 240) -> Iterator[LabHub]:
    """Start the cluster in the background (the caller waits with hub.wait); stop it on exit."""
    added: list[str] = []
    starter: threading.Thread | None = None
    hub = None
    root.mkdir(parents=True, exist_ok=True)
    try:
        for address in ADDRESSES:
            _ip("addr", "add", f"{address}/24", "dev", BRIDGE)
            added.append(address)
        tls, ca = certificates(root, mesh_ca)
        hub = LabHub(root, ca)
        starter = threading.Thread(target=hub._start, args=(tls, timeout_s), daemon=True)
        starter.start()
        yield hub
    finally:
        if starter is not None:
            starter.join(timeout_s + 60)
        if hub is not None and hub.cluster is not None:
            hubcluster.stop(hub.cluster)
        for address in added:
            _ip("addr", "del", f"{address}/24", "dev", BRIDGE)
