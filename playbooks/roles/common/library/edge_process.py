#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Run a service from its systemd unit file where systemd is not the service manager."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edge_process
short_description: Run the command line of a rendered systemd unit as a background process.
description:
  - For boards (and virtual boards) where systemd does not manage services, starts the unit's
    C(ExecStart) command line with its C(Environment=) and C(WorkingDirectory=) as a background
    process in a session of its own, records its pid in I(pid_file) and sends its output to I(log_file).
  - I(state=started) leaves a running process alone (not changed); I(state=restarted) stops it
    (SIGTERM to its process group, SIGKILL after I(stop_timeout)) and starts it again;
    I(state=stopped) stops it.
  - I(pid_file) holds the pid, the process's start time (so a pid reused by another process is
    never mistaken for the service) and a digest of the command line, environment and working
    directory it was started with. A running process started from a different C(ExecStart),
    C(Environment=) or C(WorkingDirectory=) is restarted by I(state=started) too.
options:
  unit:
    description: Path of the rendered unit file (its C([Service]) section is read).
    type: path
    required: true
  pid_file:
    description: Where the pid of the running process is kept.
    type: path
    required: true
  log_file:
    description: File that receives the process's standard output and error (appended).
    type: path
  state:
    description: Wanted state.
    type: str
    choices: [started, stopped, restarted]
    default: started
  stop_timeout:
    description: Seconds to wait after SIGTERM before SIGKILL.
    type: int
    default: 15
  settle:
    description: Seconds the process must stay alive after a start to count as started.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
- name: Ensure the agent of a virtual board is running.
  edge_process:
    unit: /srv/boards/board-1/etc/systemd/system/edge-agent.service
    pid_file: /srv/boards/board-1/run/edge-agent.pid
    log_file: /srv/boards/board-1/var/log/edge-agent.log
    state: started
"""

RETURN = r"""
pid:
  description: Pid of the running process (0 when stopped).
  returned: always
  type: int
argv:
  description: The command line taken from ExecStart.
  returned: always
  type: list
"""

import hashlib
import json
import os
import pwd
import shlex
import signal
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def read_service(path):
    """(argv, environment, working directory) from a unit's [Service] section."""
    section, pending, entries = "", "", []
    with open(path, encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if pending:
                line, pending = pending + " " + line.strip(), ""
            if line.endswith("\\"):
                pending = line[:-1].rstrip()
                continue
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                section = stripped[1:-1]
            elif section == "Service" and "=" in stripped:
                key, _, value = stripped.partition("=")
                entries.append((key.strip(), value.strip()))
    argv, env, workdir = [], {}, None
    for key, value in entries:
        if key == "ExecStart":
            argv = shlex.split(value.lstrip("-@+!:"))
        elif key == "Environment":
            for item in shlex.split(value):
                name, sep, val = item.partition("=")
                if sep:
                    env[name] = val
        elif key == "WorkingDirectory":
            workdir = value.lstrip("-")
    return argv, env, workdir


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def alive(pid):
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return handle.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def start_time(pid):
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return int(handle.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def runs(line, argv):
    """Whether a command line (as /proc shows it) runs argv, perhaps through an interpreter."""
    tail = argv[1:]
    return bool(line) and (not tail or line[-len(tail):] == tail) and any(
        os.path.basename(part) == os.path.basename(argv[0]) for part in line)


def digest(argv, env, workdir):
    """A short digest of what a process is started with."""
    text = json.dumps([argv, sorted(env.items()), workdir or ""])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def our_process(pid_file, argv, wanted):
    """(pid, current) for the process pid_file names, or (0, False) when it does not run.

    current says whether it was started the way the unit now says (digest wanted)."""
    try:
        with open(pid_file, encoding="utf-8") as handle:
            fields = handle.read().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return 0, False
    if not alive(pid):
        return 0, False
    if len(fields) >= 3:
        if str(start_time(pid)) != fields[1]:
            return 0, False
        return pid, fields[2] == wanted
    return (pid, True) if runs(cmdline(pid), argv) else (0, False)


def stop(pid, timeout):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for target in (lambda s: os.killpg(pid, s), lambda s: os.kill(pid, s)):
            try:
                target(sig)
                break
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while alive(pid) and time.monotonic() < deadline:
            reap(pid)
            time.sleep(0.1)
        if not alive(pid):
            return
    raise RuntimeError("process %d survived SIGKILL" % pid)


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def start(argv, env, workdir, pid_file, log_file, settle, wanted):
    user = pwd.getpwuid(os.getuid())
    environment = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "HOME": user.pw_dir, "USER": user.pw_name,
                   "LOGNAME": user.pw_name}
    environment.update(env)
    for path in (pid_file, log_file):
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    out = open(log_file, "ab") if log_file else open(os.devnull, "wb")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=workdir or "/", env=environment, close_fds=True, start_new_session=True)
    finally:
        out.close()
    tmp = pid_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("%d %s %s\n" % (proc.pid, start_time(proc.pid), wanted))
    os.replace(tmp, pid_file)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        os.unlink(pid_file)
        return 0, proc.returncode
    return proc.pid, None


def tail(path, size=1500):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="path", required=True),
            pid_file=dict(type="path", required=True),
            log_file=dict(type="path"),
            state=dict(type="str", default="started", choices=["started", "stopped", "restarted"]),
            stop_timeout=dict(type="int", default=15),
            settle=dict(type="float", default=1.0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    state = params["state"]
    if not os.path.isfile(params["unit"]):
        if state == "stopped":
            module.exit_json(changed=False, pid=0, argv=[])
        module.fail_json(msg="unit file %s does not exist" % params["unit"])
    argv, env, workdir = read_service(params["unit"])
    if not argv:
        module.fail_json(msg="unit file %s has no ExecStart" % params["unit"])
    wanted = digest(argv, env, workdir)
    pid, current = our_process(params["pid_file"], argv, wanted)
    if state == "started" and pid and current:
        module.exit_json(changed=False, pid=pid, argv=argv)
    if state == "stopped" and not pid:
        if os.path.exists(params["pid_file"]):
            if not module.check_mode:
                os.unlink(params["pid_file"])
            module.exit_json(changed=True, pid=0, argv=argv, msg="removed a stale pid file")
        module.exit_json(changed=False, pid=0, argv=argv)
    if module.check_mode:
        module.exit_json(changed=True, pid=pid, argv=argv)
    try:
        if pid:
            stop(pid, params["stop_timeout"])
        if state == "stopped":
            if os.path.exists(params["pid_file"]):
                os.unlink(params["pid_file"])
            module.exit_json(changed=True, pid=0, argv=argv)
        new_pid, code = start(argv, env, workdir, params["pid_file"], params["log_file"], params["settle"],
                              wanted)
    except (OSError, RuntimeError) as err:
        verb = {"started": "start", "restarted": "restart", "stopped": "stop"}[state]
        module.fail_json(msg="cannot %s %s: %s" % (verb, params["unit"], err), argv=argv)
    if not new_pid:
        detail = tail(params["log_file"]) if params["log_file"] else ""
        module.fail_json(msg="%s exited at start with status %s: %s" % (argv[0], code, detail or "no output"),
                         argv=argv)
    module.exit_json(changed=True, pid=new_pid, argv=argv)


if __name__ == "__main__":
    main()
