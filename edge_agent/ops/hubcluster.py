"""A RabbitMQ cluster on one machine, for the hub topology's demo, tests and benchmark.

Every node, its Erlang distribution and epmd listen on loopback addresses only (node i on
BASE.i, epmd on all of them and, as epmd always does, 127.0.0.1, on a port of its own).
`start` returns once every node has joined the cluster and accepts MQTT logins.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_agent.errors import MeshError
from edge_agent.ops import hubconf
from edge_agent.ops.procgroup import alive as _alive
from edge_agent.ops.procgroup import members as _group_members
from edge_agent.ops.procgroup import signal_group as _signal
from edge_agent.ops.procgroup import wait_gone as _wait_gone

RABBITMQ = Path("/usr/lib/rabbitmq/bin")
CLUSTER_FILE = "hub.json"
REGISTRY_WAIT_S = 60.0
"""How long start() waits for the nodes' MQTT client-id registry to form, once they run."""

LEFT_OUT_S = 10.0
"""A node outside the registry's group for this long is taken as left out, not as joining it."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Node:
    name: str
    host: str
    mqtt_port: int
    dist_port: int
    pid: int = 0


@dataclass(frozen=True)
class Cluster:
    directory: str
    nodes: list[Node]
    epmd_port: int
    epmd_pid: int

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(n.host, n.mqtt_port) for n in self.nodes]


def plan(count: int, address_base: str, mqtt_port: int = 1883) -> list[Node]:
    if not 1 <= count <= 9:
        raise MeshError("a local hub has 1 to 9 nodes")
    if not address_base.startswith("127."):
        raise MeshError("a local hub lives on loopback: the address base must start with 127.")
    return [Node(f"hub-{i}@{address_base}.{i}", f"{address_base}.{i}", mqtt_port, 25700 + i)
            for i in range(1, count + 1)]


def _port_for(address_base: str) -> int:
    """An epmd port per address block, so that hubs on different blocks never share one."""
    _, b, c = address_base.split(".")
    return 4400 + (int(b) * 7 + int(c)) % 500


def _env(root: Path, node: Node, epmd_port: int) -> dict[str, str]:
    home = root / node.name.split("@")[0]
    interface = "{" + node.host.replace(".", ",") + "}"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "LANG": "C.UTF-8",
        "RABBITMQ_NODENAME": node.name, "RABBITMQ_USE_LONGNAME": "true",
        "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"), "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_ENABLED_PLUGINS": "rabbitmq_mqtt",
        "RABBITMQ_DIST_PORT": str(node.dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        # Distribution on this node's loopback address only; one scheduler and no busy-waiting,
        # as befits a small shared machine (and keeps idle CPU figures honest).
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-kernel inet_dist_use_interface {interface} -start_epmd false "
                                               "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none",
        "RABBITMQ_CTL_ERL_ARGS": f"-kernel inet_dist_use_interface {interface} -start_epmd false",
    }


def start(root: Path, count: int, address_base: str, credentials: dict[str, str], timeout_s: float = 120,
          tls: hubconf.NodeTls | None = None, nodes: list[Node] | None = None) -> Cluster:
    """Start the cluster: `count` nodes on address_base.1… (loopback), or the given nodes (on a
    LAN, such as the board lab's bridge; the caller is in the network namespace they belong to)."""
    root.mkdir(parents=True, exist_ok=True)
    cookie = root / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
    (root / "rabbitmq-env.conf").write_text("# every setting comes from the environment\n")
    write_definitions(root, credentials)
    nodes = nodes or plan(count, address_base)
    epmd_port = _port_for(nodes[0].host.rsplit(".", 1)[0])
    epmd = subprocess.Popen(["epmd", "-address", ",".join(n.host for n in nodes), "-port", str(epmd_port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=(root / "epmd.log").open("ab"), start_new_session=True)
    cluster = Cluster(str(root), [], epmd_port, epmd.pid)
    try:
        admin = secrets.token_hex(16)
        for node in nodes:
            home = root / node.name.split("@")[0]
            home.mkdir(exist_ok=True)
            (home / "rabbitmq.conf").write_text(hubconf.render_node_conf(
                hubconf.HubNode(node.name, node.host, node.mqtt_port),
                [hubconf.HubNode(n.name, n.host, n.mqtt_port) for n in nodes], str(root / "definitions.json"), admin,
                tls))
            (home / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
            cluster.nodes.append(start_node(cluster, node))
            save(cluster)
        for node in cluster.nodes:
            wait_running(cluster, node, timeout_s)
        form_client_id_registry(cluster, REGISTRY_WAIT_S)
    except BaseException:
        stop(cluster)
        raise
    return cluster


def start_node(cluster: Cluster, node: Node) -> Node:
    """Start (or restart) one node from its rendered configuration; returns it with its pid."""
    root = Path(cluster.directory)
    log = (root / f"{node.name.split('@')[0]}.out").open("ab")
    proc = subprocess.Popen([str(RABBITMQ / "rabbitmq-server")], env=_env(root, node, cluster.epmd_port),
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    return Node(**{**asdict(node), "pid": proc.pid})


def ctl(cluster: Cluster, node: Node, *args: str, timeout_s: float = 60) -> str:
    """Run rabbitmqctl against node; its own Erlang node listens on loopback only, like the cluster's."""
    env = _env(Path(cluster.directory), node, cluster.epmd_port)
    done = subprocess.run([str(RABBITMQ / "rabbitmqctl"), "-n", node.name, "-l", *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise MeshError(f"rabbitmqctl {args[0]} on {node.name} failed: {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


def wait_running(cluster: Cluster, node: Node, timeout_s: float) -> None:
    """Return once node has booted, joined the others and listens for MQTT."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(node.pid):
            raise MeshError(f"hub node {node.name} exited; see {cluster.directory}/{node.name.split('@')[0]}.out")
        try:
            ctl(cluster, node, "await_startup", "--timeout", str(max(1, int(deadline - time.monotonic()))),
                timeout_s=deadline - time.monotonic() + 5)
            status = json.loads(ctl(cluster, node, "cluster_status", "--formatter", "json"))
            if len(status.get("running_nodes", [])) == len(cluster.nodes):
                # Seen on a loaded machine: a node that booted while another created the vhost never
                # started it, and refuses every login with "vhost '/' is down". Start it there.
                if ctl(cluster, node, "eval", 'rabbit_vhost_sup_sup:is_vhost_alive(<<"/">>).').strip() == "true":
                    return
                ctl(cluster, node, "restart_vhost", "-p", "/")
        except (MeshError, subprocess.TimeoutExpired, json.JSONDecodeError):
            pass
        time.sleep(1.0)
    raise MeshError(f"hub node {node.name} not running in the cluster after {timeout_s:.0f} s")


def registry_members(cluster: Cluster) -> dict[str, set[str]]:
    """The members of the MQTT client-id registry (mqtt_node) as each node sees them; empty for a
    node that knows no leader of it, absent when the cluster cannot be asked."""
    listed = ", ".join(f"'{n.name}'" for n in cluster.nodes)
    query = (f"[{{N, case ra:members({{mqtt_node, N}}, 3000) of {{ok, Ms, _}} -> [M || {{_, M}} <- Ms]; "
             f"_ -> [] end}} || N <- [{listed}]].")
    try:
        shown = "".join(ctl(cluster, cluster.nodes[0], "eval", query).split())
    except (MeshError, subprocess.TimeoutExpired):
        return {}
    return {name: set(re.findall(r"'([^']+)'", members))
            for name, members in re.findall(r"\{'([^']+)',\[([^\]]*)\]\}", shown)}


def form_client_id_registry(cluster: Cluster, timeout_s: float) -> None:
    """Return once every node is a member of the cluster's MQTT client-id registry (mqtt_node, a
    Raft group of RabbitMQ's own), or warn after timeout_s.

    Nodes booted together sometimes leave one out of it: each looks for peers when it boots, and
    one may start its member before the others formed the group. A node left out answers every
    CONNECT with "server unavailable" for good. Its registry's start, run again, joins the group."""
    names = {n.name for n in cluster.nodes}
    deadline = time.monotonic() + timeout_s
    out_since: dict[str, float] = {}
    restarted: set[str] = set()
    while True:
        seen = registry_members(cluster)
        if all(seen.get(name) == names for name in names):
            return
        now = time.monotonic()
        if now > deadline:
            log.warning("the hub's MQTT client-id registry did not form on every node (members seen: %s); "
                        "a node left out refuses logins and the bridges fail over from it", seen)
            return
        group = max(seen.values(), key=len, default=set())
        for name in sorted(names):
            if not group or name in group:
                out_since.pop(name, None)
            elif name not in restarted and now - out_since.setdefault(name, now) > LEFT_OUT_S:
                with contextlib.suppress(MeshError, subprocess.TimeoutExpired):
                    ctl(cluster, cluster.nodes[0], "eval", f"rpc:cast('{name}', mqtt_node, start, []).")
                    restarted.add(name)
        time.sleep(2.0)


def write_definitions(root: Path, credentials: dict[str, str]) -> Path:
    path = root / "definitions.json"
    path.write_text(hubconf.render_definitions(credentials))
    path.chmod(0o600)
    return path


def add_devices(cluster: Cluster, credentials: dict[str, str]) -> None:
    """Give new devices their logins on the running cluster (the cluster's side of a board joining)."""
    path = write_definitions(Path(cluster.directory), credentials)
    live = next((n for n in cluster.nodes if _alive(n.pid)), None)
    if live is None:
        raise MeshError("no hub node is running")
    ctl(cluster, live, "import_definitions", str(path))


def save(cluster: Cluster) -> None:
    path = Path(cluster.directory) / CLUSTER_FILE
    path.write_text(json.dumps(asdict(cluster), indent=2))


def load(root: Path) -> Cluster:
    data = json.loads((root / CLUSTER_FILE).read_text())
    return Cluster(data["directory"], [Node(**n) for n in data["nodes"]], data["epmd_port"], data["epmd_pid"])


def kill_node(node: Node) -> None:
    """SIGKILL a node's whole process group (its beam and helpers): a node lost without warning."""
    _signal(node.pid, signal.SIGKILL)
    _wait_gone([node.pid], 15)


def stop(cluster: Cluster) -> None:
    """Stop every node, then epmd, by process group; SIGKILL what does not leave in time."""
    for pids, grace in (([n.pid for n in cluster.nodes], 30.0), ([cluster.epmd_pid], 5.0)):
        live = [p for p in pids if _alive(p) or _group_members([p])]
        for pid in live:
            _signal(pid, signal.SIGTERM)
        _wait_gone(live, grace)
        for pid in live:
            _signal(pid, signal.SIGKILL)
        _wait_gone(live, 5)


def restart_node(cluster: Cluster, name: str, timeout_s: float = 120) -> Node:
    """Start a stopped node again with its data (it rejoins the cluster); returns once it runs there."""
    index = next(i for i, n in enumerate(cluster.nodes) if n.name == name)
    if _alive(cluster.nodes[index].pid):
        raise MeshError(f"hub node {name} is still running")
    node = start_node(cluster, cluster.nodes[index])
    cluster.nodes[index] = node
    save(cluster)
    wait_running(cluster, node, timeout_s)
    return node
