"""What the lab needs from the host: root, the Debian packages, namespaces, and commands."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Debian packages the control node needs for the lab, with the command each one provides.
PACKAGES = {
    "systemd-container": "systemd-nspawn",
    "mmdebstrap": "mmdebstrap",
    "tinyproxy": "tinyproxy",
    "socat": "socat",
    "openssh-client": "ssh",
    "iproute2": "ip",
    # The fault tests' loss and delay rules (lab/faults.py).
    "nftables": "nft",
}

CLONE_NEWNET = 0x40000000


class LabError(Exception):
    """A lab step failed; the message is one line saying what and where to look."""


def run(argv: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv[:4])} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}")
    return result


def why_impossible() -> str | None:
    """One line saying why this host cannot run the lab, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, mounts, systemd-nspawn)"
    if not Path("/proc/self/ns/net").exists():
        return "the kernel has no network namespaces"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay filesystem"
    if not (Path("/sys/fs/cgroup/unified").is_dir() or Path("/sys/fs/cgroup/cgroup.controllers").exists()):
        return "no cgroup v2 hierarchy for systemd-nspawn"
    return None


def ensure_packages() -> None:
    """Install the lab's Debian packages that are missing (apt-get, idempotent)."""
    missing = [pkg for pkg, command in PACKAGES.items() if not shutil.which(command)
               and not Path("/usr/sbin", command).exists()]
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise LabError(f"missing {', '.join(missing)} and this host has no apt-get")
    print(f"lab: installing {' '.join(missing)} with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


@contextmanager
def inside_netns(name: str) -> Iterator[None]:
    """Switch the calling thread into network namespace `name` (sockets made meanwhile stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net", "rb") as home, open(f"/run/netns/{name}", "rb") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise LabError(f"cannot enter network namespace {name}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            libc.setns(home.fileno(), CLONE_NEWNET)
