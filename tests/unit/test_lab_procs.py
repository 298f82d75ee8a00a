"""The lab knows its background processes by a pid file and a marker in the command line."""

import os
from pathlib import Path

from lab import procs


def own_pid_file(tmp_path: Path) -> tuple[Path, str]:
    pid_file = tmp_path / "p.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    program = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")[0].decode()
    return pid_file, program


def test_a_process_replacing_its_program_is_not_taken_for_stopped(tmp_path, monkeypatch):
    pid_file, program = own_pid_file(tmp_path)
    assert procs.read_pid(pid_file, program) == os.getpid(), "control: found by its command line"
    real, reads = Path.read_bytes, []

    def mid_execve(path: Path) -> bytes:
        reads.append(path)
        return b"" if len(reads) == 1 else real(path)  # the kernel's answer while execve runs

    monkeypatch.setattr(Path, "read_bytes", mid_execve)
    assert procs.read_pid(pid_file, program) == os.getpid()
    assert len(reads) == 2, "read again once the new program is in place"


def test_a_pid_file_naming_another_program_names_no_process_of_the_lab(tmp_path):
    pid_file, _ = own_pid_file(tmp_path)
    assert procs.read_pid(pid_file, "dmoa-lab-no-such-marker") == 0
    pid_file.write_text("not a pid\n")
    assert procs.read_pid(pid_file, "dmoa-lab") == 0
