"""Running the playbook from tests: the example inventory's virtual boards, in a folder of the
test's own, on ports of their own (so boards started by hand from the example keep running),
torn down by pid file at the end however the tests went."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventory.example.ini"
SITE = ROOT / "playbooks" / "site.yml"
DEVICES = ("board-1", "board-2", "board-3")
ADDRESSES = {"board-1": "127.0.30.1", "board-2": "127.0.30.2", "board-3": "127.0.30.3"}
LOCAL_PORT = 18930
TLS_PORT = 18983
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: pip install -e '.[test]'")
    return str(path)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
    })
    return env


def run(argv: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=environment(), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def recap(output: str) -> dict[str, dict[str, int]]:
    return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(output)}


@dataclass
class VirtualMesh:
    """The three virtual boards of the example inventory, provisioned into root."""

    root: Path
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    @property
    def boards_dir(self) -> Path:
        return self.root / "boards"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    def extra_vars(self, **more: object) -> str:
        # admission=accept: a prompt runs with the (M, k) asked even when this shared machine is busy
        # and the agents' admission control would run a lighter one.
        return json.dumps({"edge_boards_dir": str(self.boards_dir), "edge_pki_dir": str(self.pki_dir),
                           "edge_broker_local_port": LOCAL_PORT, "edge_broker_tls_port": TLS_PORT,
                           "agent_settings": {"admission": "accept"}, **more})

    def playbook(self, *args: str, timeout: float = 240, **more: object) -> subprocess.CompletedProcess[str]:
        argv = [tool("ansible-playbook"), "-i", str(INVENTORY), str(SITE), "-e", self.extra_vars(**more), *args]
        result = run(argv, timeout)
        self.runs.append(result)
        return result

    def board(self, device: str) -> Path:
        return self.boards_dir / device

    def password(self, device: str) -> str:
        return (self.pki_dir / "passwords" / device).read_text().strip()

    def pids(self) -> dict[str, int]:
        found = {}
        for pid_file in sorted(self.boards_dir.glob("*/run/*.pid")):
            try:
                found[f"{pid_file.parent.parent.name}/{pid_file.stem}"] = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return found

    def local_broker(self, device: str) -> str:
        return f"{ADDRESSES[device]}:{LOCAL_PORT}"

    def teardown(self) -> list[str]:
        """Stop every board's processes: the playbook's teardown first, then by pid file."""
        if not any(alive(pid) for pid in self.pids().values()):
            return []
        try:
            self.playbook("--tags", "teardown", timeout=90)
        except subprocess.TimeoutExpired:
            pass
        leftovers = []
        for name, pid in self.pids().items():
            if alive(pid):
                leftovers.append(name)
                stop(pid)
        return leftovers


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def stop(pid: int, timeout_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not alive(pid):
            return
