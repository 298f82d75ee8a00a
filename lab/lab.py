"""Bring the lab up and down, idempotently."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import boards, host, image, network, proxy
from .boards import Board
from .host import LabError
from .paths import BRIDGE_NS, CACHE, CGROUP, OUT, REPO, STATE, USER, board_address, board_name, board_ns

MODEL = "smollm2-135m-instruct-q4_1"


@dataclass(frozen=True)
class Lab:
    boards: list[Board]
    inventory: Path
    ssh_config: Path

    def ssh(self, name: str, *command: str, timeout: float = 60, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        board = next(b for b in self.boards if b.name == name)
        return subprocess.run(boards.ssh_argv(self.ssh_config, board, list(command)), capture_output=True,
                              text=True, timeout=timeout, check=check, input=input)


def all_boards(count: int) -> list[Board]:
    return [Board(board_name(i), board_address(i), board_ns(board_name(i))) for i in range(1, count + 1)]


def ssh_key() -> Path:
    key = CACHE / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dmoa-edge lab", "-f", str(key)])
    return key


def write_ssh_config(lab_boards: list[Board], key: Path) -> Path:
    lines = ["# SSH to the lab's boards: ssh -F .lab/ssh_config board-1  (written by `make lab`)"]
    for board in lab_boards:
        lines += [f"Host {board.name}", f"  HostName {board.address}"]
    lines += [
        "Host *",
        f"  User {USER}",
        f"  IdentityFile {key}",
        "  IdentitiesOnly yes",
        # Every lab boots boards with the image's host keys on reused addresses.
        "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null",
        "  LogLevel ERROR",
        "  ConnectTimeout 10",
        # The TCP connection is made inside the lab's bridge namespace: the root namespace has no
        # route to the boards, and needs none.
        f"  ProxyCommand ip netns exec {BRIDGE_NS} socat - TCP:%h:%p",
    ]
    path = OUT / "ssh_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_inventory(lab_boards: list[Board], ssh_config: Path) -> Path:
    hosts = [f"{b.name} ansible_host={b.address} edge_device={b.name} edge_mesh_address={b.address}"
             for b in lab_boards]
    inventory = OUT / "inventory.ini"
    inventory.write_text(
        "# The lab's boards (written by `make lab`; see docs/lab.md). Settings: group_vars/edge.yml.\n"
        "#   .venv/bin/ansible-playbook -i .lab/inventory.ini playbooks/site.yml\n"
        "[lab]\n" + "\n".join(hosts) + "\n\n[edge:children]\nlab\n")
    group_vars = OUT / "group_vars"
    group_vars.mkdir(exist_ok=True)
    (group_vars / "edge.yml").write_text(f"""---
# Settings of the lab's boards (written by `make lab`).
ansible_user: {USER}
ansible_become: true
ansible_ssh_common_args: -F {ssh_config}
# Every lab's boards have the same addresses: SSH connections shared through one control socket
# per address would reach another lab's board. One folder of control sockets per lab.
ansible_control_path_dir: {STATE / 'ssh-cp'}
ansible_python_interpreter: /usr/bin/python3
edge_board: any
edge_model: {MODEL}
# Three boards share this machine's cores.
edge_threads: 1
edge_install_packages: true
edge_venv: /opt/edge-agent/venv
edge_broker_local_address: 127.0.0.1
edge_broker_local_port: 1883
edge_broker_tls_port: 8883
# The boards have no uplink: apt and pip go through the lab's proxy on the bridge.
edge_http_proxy: {proxy.url()}
edge_pki_dir: {OUT / 'pki'}
edge_control_agent: {REPO / '.venv' / 'bin' / 'edge-agent'}
# A portable x86-64 build (AVX2, no AVX-512 or AMX): a host that is a virtual machine may advertise
# CPU features its hypervisor does not enable, and a native build then dies with a general
# protection fault at its first AMX instruction (measured here: ldtilecfg in libggml-cpu).
llama_cpp_cmake_args_extra: -DGGML_NATIVE=off
agent_max_tokens: 32
agent_status_interval_s: 1.0
# A prompt runs with the (M, k) asked even when the shared machine is busy.
agent_settings:
  admission: accept
""")
    return inventory


def up(count: int, boot_timeout_s: float = 90.0) -> Lab:
    """Build (or reuse) the image, start the proxy and `count` boards, write the inventory."""
    reason = host.why_impossible()
    if reason:
        raise LabError(reason)
    host.ensure_packages()
    base = image.ensure_image()
    key = ssh_key()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ".gitignore").write_text("*\n")
    lab_boards = all_boards(count)
    stale = sorted(set(known_boards()) - {b.name for b in lab_boards})
    for name in stale:
        _remove(Board(name, "", board_ns(name)))
    network.ensure_bridge()
    proxy.start()
    public_key = key.with_suffix(".pub").read_text()
    ssh_config = write_ssh_config(lab_boards, key)
    for board in lab_boards:
        network.ensure_board(board.name, board.address)
        boards.prepare(board, base, public_key)
        boards.boot(board)
    (STATE / "boards.txt").write_text("\n".join(b.name for b in lab_boards) + "\n")
    with ThreadPoolExecutor(max_workers=len(lab_boards)) as pool:
        outcomes = list(pool.map(_wait(ssh_config, boot_timeout_s), lab_boards))
    failures = [str(outcome) for outcome in outcomes if isinstance(outcome, LabError)]
    if failures:
        raise LabError("; ".join(failures))
    return Lab(lab_boards, write_inventory(lab_boards, ssh_config), ssh_config)


def _wait(ssh_config: Path, timeout_s: float):
    def wait(board: Board) -> str | LabError:
        try:
            return boards.wait_up(board, ssh_config, timeout_s)
        except LabError as err:
            return err
    return wait


def known_boards() -> list[str]:
    folder = STATE / "boards"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _remove(board: Board) -> None:
    boards.halt(board)
    boards.forget(board)
    network.remove(board.ns)


def down() -> None:
    """Stop every board and the proxy; remove every namespace, mount, cgroup and overlay."""
    names = known_boards()
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        list(pool.map(lambda n: _remove(Board(n, "", board_ns(n))), names))
    proxy.stop()
    for ns in network.lab_namespaces():
        network.remove(ns)
    for base in boards.CGROUP_ROOTS:
        if (base / CGROUP).is_dir():
            boards._remove_cgroup(base / CGROUP)
    shutil.rmtree(STATE / "proxy", ignore_errors=True)
    (STATE / "boards.txt").unlink(missing_ok=True)


def status() -> list[str]:
    lines = []
    for name in known_boards():
        board = Board(name, "", board_ns(name))
        lines.append(f"{name}: {'running' if board.running() else 'stopped'} (console: {board.console})")
    return lines or ["no lab boards"]


__all__ = ["Lab", "LabError", "up", "down", "status"]
