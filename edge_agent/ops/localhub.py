"""The local mesh in the hub topology: a RabbitMQ cluster under DIR/hub, one login per device.

Each device's broker lists the cluster's nodes starting from a different one (device i starts at
node i mod n), so the boards spread over the nodes and each fails over to the next. A device
joins with its login on the cluster and its own broker: no other board's configuration changes.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import MeshError
from edge_agent.ops import brokerconf, hubcluster, localmesh

HUB_DIR = "hub"
CREDENTIALS = "credentials.json"


@dataclass
class Hub:
    directory: Path
    cluster: hubcluster.Cluster
    credentials: dict[str, str]

    def bridge_for(self, device: str) -> brokerconf.HubBridge:
        nodes = self.cluster.addresses
        first = (int(device.rsplit("-", 1)[-1]) - 1) % len(nodes) if device[-1].isdigit() else 0
        return brokerconf.HubBridge(nodes[first:] + nodes[:first], device, self.credentials[device])

    def stop(self) -> None:
        hubcluster.stop(self.cluster)


def _write_credentials(root: Path, credentials: dict[str, str]) -> None:
    path = root / CREDENTIALS
    path.touch(mode=0o600)
    path.write_text(json.dumps(credentials, indent=2))


def start_hub(directory: Path, devices: list[str], nodes: int, address_base: str, timeout_s: float) -> Hub:
    root = directory / HUB_DIR
    root.mkdir(parents=True, exist_ok=True)
    credentials = {d: secrets.token_urlsafe(18) for d in devices}
    _write_credentials(root, credentials)
    cluster = hubcluster.start(root, nodes, address_base, credentials, timeout_s=timeout_s)
    return Hub(root, cluster, credentials)


def load_hub(directory: Path) -> Hub | None:
    root = directory / HUB_DIR
    if not (root / hubcluster.CLUSTER_FILE).is_file():
        return None
    return Hub(root, hubcluster.load(root), json.loads((root / CREDENTIALS).read_text()))


def stop_hub(directory: Path) -> None:
    hub = load_hub(directory)
    if hub is not None:
        hub.stop()


def join(directory: Path, agent_settings: dict[str, Any], timeout_s: float = 90.0) -> localmesh.VirtualDevice:
    """Add one device to a running hub mesh: its login on the cluster, then its broker and agent.

    Returns once every device, the new one included, sees every other."""
    hub = load_hub(directory)
    if hub is None:
        raise MeshError("only a hub mesh grows without touching its boards; this one is a full mesh")
    devices = localmesh.load(directory)
    last = devices[-1]
    index = len(devices) + 1
    device, host = f"edge-{index}", f"{last.host.rsplit('.', 1)[0]}.{index}"
    hub.credentials[device] = secrets.token_urlsafe(18)
    _write_credentials(hub.directory, hub.credentials)
    hubcluster.add_devices(hub.cluster, hub.credentials)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    layout = [(d.device, d.host, d.port) for d in devices] + [(device, host, last.port)]
    new = localmesh._start_device(mosquitto, directory, device, host, last.port, layout, agent_settings,
                                  hub=hub.bridge_for(device))
    localmesh._save(directory, [*devices, new])
    localmesh.wait_ready([*devices, new], timeout_s, listen_s=localmesh._listen_s(agent_settings))
    return new
