"""The board image: a Debian bookworm userland with systemd, sshd and sudo, built once with
mmdebstrap and cached under a name derived from what it contains."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .host import LabError, run
from .paths import CACHE, USER

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What a freshly flashed board has: an init, SSH, sudo, Python for Ansible. Everything else
# (compilers, mosquitto, python3-venv) the playbook installs through the lab's proxy.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "sudo",
            "iproute2", "libnss-myhostname"]
# Timers that would run apt or fsck jobs behind the playbook's back.
MASKED = ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
          "dpkg-db-backup.timer"]
SOURCES = f"""deb {MIRROR} {SUITE} main
deb {MIRROR} {SUITE}-updates main
deb http://deb.debian.org/debian-security {SUITE}-security main
"""
# Each board gets its own machine id and hostname at first boot; user `lab` may become root.
CUSTOMIZE = [
    "truncate -s 0 $1/etc/machine-id",
    "rm -f $1/etc/hostname $1/var/lib/dbus/machine-id",
    f"chroot $1 useradd --create-home --shell /bin/bash {USER}",
    f"echo '{USER} ALL=(ALL) NOPASSWD:ALL' > $1/etc/sudoers.d/{USER} && chmod 0440 $1/etc/sudoers.d/{USER}",
    *[f"ln -sf /dev/null $1/etc/systemd/system/{timer}" for timer in MASKED],
    f"printf '%s' '{SOURCES}' > $1/etc/apt/sources.list",
    # Boards are thrown away after use: dpkg need not sync every file it unpacks.
    "echo force-unsafe-io > $1/etc/dpkg/dpkg.cfg.d/dmoa-lab-unsafe-io",
]
VERSION = 1


def image_key() -> str:
    text = "\n".join([str(VERSION), SUITE, MIRROR, *PACKAGES, *CUSTOMIZE])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_dir() -> Path:
    return CACHE / f"image-{SUITE}-{image_key()}"


def ensure_image() -> Path:
    """The cached image, built first when its package list (or how it is made) changed."""
    target = image_dir()
    if (target / "etc" / "os-release").exists():
        return _aged(target)
    CACHE.mkdir(parents=True, exist_ok=True)
    mounts = Path("/proc/self/mountinfo").read_text()
    for stale in CACHE.glob(f"image-{SUITE}-*"):
        if f"lowerdir={stale}" not in mounts:  # boards of a running lab still use it
            shutil.rmtree(stale, ignore_errors=True)
    print(f"lab: building the board image {target.name} with mmdebstrap (about 2 minutes)", flush=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".build-") as tmp:
        root = Path(tmp) / "root"
        argv = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
                "--include=" + ",".join(PACKAGES)]
        argv += [f"--customize-hook={hook}" for hook in CUSTOMIZE]
        argv += [SUITE, str(root), MIRROR]
        result = run(argv, check=False)
        if result.returncode != 0:
            log = CACHE / "image-build.log"
            log.write_text(result.stdout + result.stderr)
            raise LabError(f"mmdebstrap failed; see {log}")
        root.rename(target)
    return _aged(target)


def _aged(root: Path) -> Path:
    """Make the apt lists look as old as on a board flashed long ago: mmdebstrap empties them, but
    a fresh mtime would let Ansible's apt module take the (empty) cache as up to date."""
    os.utime(root / "var" / "lib" / "apt" / "lists", (0, 0))
    return root
