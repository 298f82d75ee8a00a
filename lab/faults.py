"""Faults for the lab's boards: a power cut, a link pulled out, a lossy and slow link.

This host's kernel has no sch_netem and no tc classifiers (measured: `tc qdisc add ... netem`
answers "Specified qdisc kind is unknown", `tc filter add ... matchall|u32|basic` "TC classifier
not found"), but it has nf_tables and nfnetlink_queue. So:

- loss is an nftables rule in the board's namespace that drops a random share of the packets
  (`numgen random mod 100 < P drop`): real packets lost on the wire, retransmitted by TCP;
- delay is a TCP relay in user space: an nftables `dnat` rule in the board's namespace sends the
  board's outgoing connections to the peer port to a relay (threads of this process, with sockets
  in that namespace), which connects on to the original destination and forwards each chunk,
  both ways, 50 +- 10 ms after it read it. The `queue` statement (nfnetlink_queue, per-packet
  delay) is not in this kernel either: "Could not process rule: No such file or directory".

Both apply to the broker bridges' TCP port only, so SSH and the tests' own clients are not slowed.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import boards
from .boards import Board
from .host import LabError, inside_netns, run
from .paths import BRIDGE_NS

TABLE = "dmoa_lab_faults"


def power_cut(board: Board, timeout_s: float = 10.0) -> int:
    """SIGKILL every process of the board at once, as a cut of its power would stop them: no
    shutdown, no unit stopped, no file synced. Returns how many processes were killed. The overlay
    stays mounted and the namespace stays, so power_on boots the same disk again."""
    killed: set[int] = set()
    supervisor = board.supervisor()
    deadline = time.monotonic() + timeout_s
    while True:
        # The supervisor first: it would boot the board again if it saw nspawn end with 133.
        pids = ([supervisor] if supervisor else []) + [p for path in board.cgroups() for p in _pids(path)]
        pids = [p for p in pids if p not in killed or _alive(p)]
        if not pids:
            break
        if time.monotonic() > deadline:
            raise LabError(f"board {board.name}: processes {pids[:5]} survived SIGKILL for {timeout_s:.0f} s")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        for pid in pids:
            _reap(pid)
        time.sleep(0.05)
    for path in board.cgroups():
        boards._remove_cgroup(path)
    board.supervisor_pid_file.unlink(missing_ok=True)
    board.nspawn_pid_file.unlink(missing_ok=True)
    return len(killed)


def power_on(board: Board, ssh_config: Path, timeout_s: float = 90.0) -> str:
    """Boot the board again from its disk; returns systemd's state once SSH answers."""
    boards.boot(board)
    try:
        return boards.wait_up(board, ssh_config, timeout_s)
    except LabError as err:
        # A test's clean-up boots the board again, writing on in the same log and, in a later
        # lab, over it: the reason this boot failed goes into the error.
        raise LabError(f"{err}; it ends:\n{boards.last_boot(board)}") from None


def _pids(path: Path) -> list[int]:
    found = []
    for procs_file in path.rglob("cgroup.procs"):
        try:
            found += [int(p) for p in procs_file.read_text().split()]
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def veth(board: Board) -> str:
    """The bridge's end of the board's link (see network.ensure_board)."""
    return f"v-{board.name}"[:15]


def set_link(board: Board, up: bool) -> None:
    """Pull the board's cable out of the bridge (down) or plug it back (up)."""
    run(["ip", "-n", BRIDGE_NS, "link", "set", veth(board), "up" if up else "down"])


def link_up(board: Board) -> bool:
    shown = run(["ip", "-n", BRIDGE_NS, "-o", "link", "show", veth(board)]).stdout
    return ",UP" in shown or "<UP" in shown


@contextmanager
def unplugged(board: Board) -> Iterator[None]:
    """The board cut off the network for the block; plugged back however the block ends."""
    set_link(board, False)
    try:
        yield
    finally:
        set_link(board, True)


def _nft(ns: str, script: str) -> None:
    run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script)


def _remove_table(ns: str) -> None:
    listed = run(["ip", "netns", "exec", ns, "nft", "list", "tables"], check=False).stdout
    if TABLE in listed:
        run(["ip", "netns", "exec", ns, "nft", "delete", "table", "ip", TABLE], check=False)


@contextmanager
def lossy(board: Board, port: int, loss_percent: int, delay_ms: float = 0.0, jitter_ms: float = 0.0,
          relay_port: int = 18883) -> Iterator[DelayRelay | None]:
    """Every packet the board sends from or to TCP `port` is dropped with probability
    loss_percent; with delay_ms, the board's own connections to `port` go through a relay that
    holds each chunk delay_ms +- jitter_ms (uniform), in both directions. The rules are on the
    board's output only: a packet between two lossy boards meets one drop rule, not two. The
    rules and the relay are removed however the block ends; connections through the relay end
    with it (the board's clients reconnect, undelayed)."""
    if not 0 <= loss_percent <= 100:
        raise ValueError("loss_percent must be 0..100")
    relay = DelayRelay(board, relay_port, delay_ms, jitter_ms) if delay_ms > 0 else None
    chains = []
    if relay:
        # The relay marks its own connections, which must reach the real destination.
        chains.append(f"  chain nat_out {{\n    type nat hook output priority -100; policy accept;\n"
                      f"    tcp dport {port} meta mark != {RELAY_MARK:#x} counter"
                      f" dnat to {board.address}:{relay_port}\n"
                      f"  }}\n")
    if loss_percent:
        drops = "".join(f"    tcp {side} {port} numgen random mod 100 < {loss_percent} counter drop\n"
                        for side in ("sport", "dport"))
        chains.append(f"  chain out {{\n    type filter hook output priority 0; policy accept;\n{drops}  }}\n")
    _remove_table(board.ns)
    try:
        if relay:
            relay.start()
        if chains:
            _nft(board.ns, f"table ip {TABLE} {{\n" + "".join(chains) + "}\n")
        yield relay
    finally:
        _remove_table(board.ns)
        if relay:
            relay.stop()


def counters(board: Board) -> dict[str, int]:
    """Packets counted by each rule of the fault table in the board's namespace ("drop", "dnat")."""
    listed = run(["ip", "netns", "exec", board.ns, "nft", "list", "table", "ip", TABLE], check=False).stdout
    found: dict[str, int] = {}
    for line in listed.splitlines():
        if "counter packets" in line:
            kind = line.split()[-1] if "drop" in line else "dnat"
            packets = int(line.split("counter packets", 1)[1].split()[0])
            found[kind] = found.get(kind, 0) + packets
    return found


RELAY_MARK = 0x6C6162  # "lab"
SO_ORIGINAL_DST = 80


class DelayRelay:
    """Accepts the connections the dnat rule sends it and joins each to its original destination,
    forwarding every chunk delay +- jitter after it was read, in order, in both directions."""

    def __init__(self, board: Board, port: int, delay_ms: float, jitter_ms: float) -> None:
        self.board, self.port = board, port
        self.delay_s, self.jitter_s = delay_ms / 1000, jitter_ms / 1000
        self.connections = 0
        self.chunks = 0
        self.delays: list[float] = []
        self._random = random.Random()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._server: socket.socket | None = None

    def start(self) -> None:
        with inside_netns(self.board.ns):
            server = socket.create_server((self.board.address, self.port), reuse_port=False)
        server.settimeout(0.2)
        self._server = server
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"relay-{self.board.name}")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                inbound, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                raw = inbound.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
                host, port = socket.inet_ntoa(raw[4:8]), struct.unpack(">H", raw[2:4])[0]
                with inside_netns(self.board.ns):
                    outbound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                outbound.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, RELAY_MARK)
                outbound.settimeout(10)
                outbound.connect((host, port))
                outbound.settimeout(None)
            except OSError:
                inbound.close()
                continue
            for sock in (inbound, outbound):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [inbound, outbound]
                self.connections += 1
            self._spawn(self._pump, inbound, outbound)
            self._spawn(self._pump, outbound, inbound)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Read from source; a writer thread sends each chunk to sink once its time has come."""
        due: list[tuple[float, bytes]] = []
        ready = threading.Condition()
        done = threading.Event()

        def write() -> None:
            while True:
                with ready:
                    while not due and not done.is_set():
                        ready.wait(0.2)
                    if not due:
                        return
                    when, chunk = due[0]
                wait = when - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                with ready:
                    due.pop(0)
                try:
                    sink.sendall(chunk)
                except OSError:
                    return
        writer = threading.Thread(target=write, daemon=True, name=f"relay-{self.board.name}-w")
        writer.start()
        last = 0.0
        try:
            while not self._stop.is_set():
                try:
                    chunk = source.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                delay = max(0.0, self.delay_s + self._random.uniform(-self.jitter_s, self.jitter_s))
                # In order, as TCP delivers it: never before the chunk read ahead of it.
                last = max(time.monotonic() + delay, last)
                with self._lock:
                    self.chunks += 1
                    if len(self.delays) < 100_000:
                        self.delays.append(delay)
                with ready:
                    due.append((last, chunk))
                    ready.notify()
        finally:
            done.set()
            with ready:
                ready.notify()
            writer.join(5)
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(5)
        for sock in sockets:
            sock.close()
