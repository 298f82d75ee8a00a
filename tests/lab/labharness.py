"""Running site.yml on the lab's boards and reading what it did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.lab import Lab  # noqa: E402
from lab.paths import BRIDGE_NS  # noqa: E402

BIN = Path(sys.executable).parent
SITE = ROOT / "playbooks" / "site.yml"
BOARDS = ("board-1", "board-2", "board-3")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
WHEEL_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dmoa-edge" / "wheels"
BUILD_TASK = "llama_cpp : Build the llama-cpp-python wheel for this kind of board."
INSTALL_TASK = "llama_cpp : Install llama-cpp-python from the wheel."


def recap(output: str) -> dict[str, dict[str, int]]:
    return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(output)}


def task_hosts(output: str, task: str, status: str = "changed") -> list[str]:
    """Hosts that reported status (changed, ok) for task in the default callback's output."""
    start = output.find(f"TASK [{task}]")
    if start < 0:
        return []
    end = output.find("\nTASK [", start + 1)
    section = output[start:end if end > 0 else None]
    return sorted(set(re.findall(rf"^{status}: \[([^\]]+)\]", section, re.M)))


def wheels() -> dict[str, list[Path]]:
    """The control node's wheel cache: kind of board -> its wheels."""
    if not WHEEL_CACHE.is_dir():
        return {}
    return {kind.name: sorted(kind.glob("llama_cpp_python-*.whl")) for kind in WHEEL_CACHE.iterdir() if kind.is_dir()}


@dataclass
class Play:
    """One ansible-playbook run against the lab, with its output and per-task durations."""

    result: subprocess.CompletedProcess[str]
    seconds: float
    durations: dict[tuple[str, str], float] = field(default_factory=dict)
    wheels_before: dict[str, list[Path]] = field(default_factory=dict)

    @classmethod
    def start(cls, lab: Lab, *args: str, timeout: float = 1500) -> Play:
        before = wheels()
        with tempfile.TemporaryDirectory(prefix="lab-junit-") as junit:
            env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                       ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                       ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit", JUNIT_OUTPUT_DIR=junit,
                       JUNIT_HIDE_TASK_ARGUMENTS="true")
            began = time.monotonic()
            result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(lab.inventory), str(SITE), *args],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            seconds = time.monotonic() - began
            durations = {}
            for report in Path(junit).glob("*.xml"):
                for case in ET.parse(report).getroot().iter("testcase"):
                    found = re.match(r"\[([^\]]+)\] (.*)", case.get("name", ""))
                    if found:
                        durations[(found[1], found[2].strip())] = float(case.get("time", "0"))
        return cls(result, seconds, durations, before)

    def duration(self, host: str, task: str) -> float | None:
        """Seconds task took on host (the junit report names cases "[host] play: role : task")."""
        found = [seconds for (name, full), seconds in self.durations.items() if name == host and full.endswith(task)]
        return found[0] if found else None

    @property
    def output(self) -> str:
        return self.result.stdout

    def recap(self) -> dict[str, dict[str, int]]:
        return recap(self.result.stdout)


def bridge_exec(*argv: str) -> list[str]:
    """A command line run inside the lab's bridge namespace (where the boards are reachable)."""
    return ["ip", "netns", "exec", BRIDGE_NS, *argv]

def wait_until(check: Callable[[], object], timeout_s: float, interval_s: float = 0.5) -> object:
    """check() until it returns something true, for at most timeout_s; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
