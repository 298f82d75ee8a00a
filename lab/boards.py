"""Boards: an overlay over the image, systemd-nspawn booting it in the board's namespace, and a
supervisor that boots it again when it reboots (nspawn exits 133 then)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .host import LabError, run
from .paths import CGROUP, STATE, USER

CGROUP_ROOTS = [Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd")]

# Boots the board until it powers off. In a mount namespace of its own: nspawn needs a tmpfs on
# /run/systemd/nspawn. SIGTERM here is passed on to nspawn, which shuts the board down.
SUPERVISOR = r"""
mkdir -p /run/systemd/nspawn && mount -t tmpfs -o mode=0755 dmoa-lab /run/systemd/nspawn || exit 1
stop=0
trap 'stop=1; kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
  systemd-nspawn --boot --directory="$1" --machine="$2" --register=no --keep-unit \
    --network-namespace-path="/run/netns/$3" --console=read-only --resolv-conf=off --timezone=off &
  child=$!
  echo "$child" > "$4"
  rc=0; wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done
  if [ "$stop" = 1 ] || [ "$rc" != 133 ]; then exit "$rc"; fi
  echo "dmoa-lab: $2 is rebooting"
done
"""


@dataclass(frozen=True)
class Board:
    name: str
    address: str
    ns: str

    @property
    def dir(self) -> Path:
        return STATE / "boards" / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    @property
    def supervisor_pid_file(self) -> Path:
        return self.dir / "supervisor.pid"

    @property
    def nspawn_pid_file(self) -> Path:
        return self.dir / "nspawn.pid"

    def cgroups(self) -> list[Path]:
        return [base / CGROUP / self.name for base in CGROUP_ROOTS if base.is_dir()]

    def supervisor(self) -> int:
        return procs.read_pid(self.supervisor_pid_file, "dmoa-lab")

    def running(self) -> bool:
        return bool(self.supervisor())


def mounted(path: Path) -> bool:
    target = str(path)
    return any(line.split()[4] == target for line in Path("/proc/self/mountinfo").read_text().splitlines())


def prepare(board: Board, image: Path, public_key: str) -> None:
    """Mount the board's overlay and give it its hostname and the control node's SSH key."""
    for part in ("upper", "work", "root"):
        (board.dir / part).mkdir(parents=True, exist_ok=True)
    if not mounted(board.root):
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={image},upperdir={board.dir / 'upper'},workdir={board.dir / 'work'}", str(board.root)])
    (board.root / "etc" / "hostname").write_text(board.name + "\n")
    uid = gid = None
    for line in (board.root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == USER:
            uid, gid = int(fields[2]), int(fields[3])
    if uid is None:
        raise LabError(f"the image has no user {USER}")
    ssh = board.root / "home" / USER / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(public_key)
    for path in (ssh, ssh / "authorized_keys"):
        os.chown(path, uid, gid)
    (ssh / "authorized_keys").chmod(0o600)
    # CAs the control node's owner added (a TLS-inspecting proxy's, say): the board trusts them too
    # once the playbook installs ca-certificates, as the owner of a board on that network would.
    local_cas = board.root / "usr" / "local" / "share" / "ca-certificates"
    local_cas.mkdir(parents=True, exist_ok=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copyfile(cert, local_cas / cert.name)


def _join_cgroups(paths: list[Path]):
    def join() -> None:
        for path in paths:
            (path / "cgroup.procs").write_text(str(os.getpid()))
    return join


def boot(board: Board) -> None:
    if board.running():
        return
    groups = board.cgroups()
    for path in groups:
        path.mkdir(parents=True, exist_ok=True)
    argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", SUPERVISOR, "dmoa-lab",
            str(board.root), board.name, board.ns, str(board.nspawn_pid_file)]
    procs.spawn(argv, board.console, board.supervisor_pid_file, preexec=_join_cgroups(groups),
                env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})


def _cgroup_pids(path: Path) -> list[int]:
    pids = []
    for procs_file in path.rglob("cgroup.procs"):
        try:
            pids += [int(p) for p in procs_file.read_text().split()]
        except OSError:
            continue
    return pids


def _remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


def halt(board: Board, timeout_s: float = 30.0) -> None:
    """Shut the board down (SIGKILL to whatever is left after timeout_s), unmount, remove cgroups."""
    pid = board.supervisor()
    if pid:
        procs.terminate(pid, timeout_s)
    for path in board.cgroups():
        leftovers = _cgroup_pids(path)
        for leftover in leftovers:
            try:
                os.kill(leftover, 9)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while _cgroup_pids(path) and time.monotonic() < deadline:
            time.sleep(0.1)
        _remove_cgroup(path)
    if mounted(board.root):
        run(["umount", str(board.root)], check=False)
        if mounted(board.root):
            run(["umount", "-l", str(board.root)], check=False)
    board.supervisor_pid_file.unlink(missing_ok=True)
    board.nspawn_pid_file.unlink(missing_ok=True)


def forget(board: Board) -> None:
    """Delete the board's overlay (what the playbook wrote) but keep its console log."""
    for part in ("upper", "work", "root"):
        shutil.rmtree(board.dir / part, ignore_errors=True)


def ssh_argv(ssh_config: Path, board: Board, command: list[str]) -> list[str]:
    """ssh running command on the board; each argument arrives as it is (ssh joins them for a shell)."""
    return ["ssh", "-F", str(ssh_config), board.name, "--", shlex.join(command)]


def last_boot(board: Board, lines: int = 15) -> str:
    """The end of the board's console log since its last boot began."""
    try:
        text = board.console.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    since = text[text.rfind("Spawning container"):] if "Spawning container" in text else text
    return "\n".join(since.splitlines()[-lines:])


def wait_up(board: Board, ssh_config: Path, timeout_s: float) -> str:
    """Wait until SSH answers and systemd finished booting; returns systemd's state."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not board.running():
            raise LabError(f"board {board.name} stopped while booting; see its console log {board.console}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(f"board {board.name} did not come up within {timeout_s:.0f} s; "
                           f"see its console log {board.console}")
        try:
            result = subprocess.run(
                ssh_argv(ssh_config, board, ["systemctl", "is-system-running", "--wait"]),
                capture_output=True, text=True, timeout=max(2.0, left))
        except subprocess.TimeoutExpired:
            continue
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.3)
