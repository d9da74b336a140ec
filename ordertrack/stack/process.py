"""Processes the stack starts: detached, tracked by pid file, stopped only by that pid.

A pid file alone is not proof: the pid may have been reused by an unrelated process after a
reboot. Before signalling, we check that the process's command line (or working folder) names
our own state folder, so `stack down` can never hit a process it did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may hold spaces; the state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()[0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def is_ours(pid: int, marker: str) -> bool:
    """True when `pid` is alive (not a zombie) and its command line, or its working folder,
    names `marker` (a path under our state folder)."""
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return marker in _cmdline(pid) or _cwd(pid) == marker


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in `pid_file` if that process is alive and ours, else None."""
    pid = read_pid(pid_file)
    return pid if pid is not None and is_ours(pid, marker) else None


def start_detached(argv: list[str], *, log_file: Path, pid_file: Path, cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> int:
    """Start `argv` in its own session, output appended to `log_file`; record and return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    # Popen returns once the exec has begun, but until the kernel has finished it the new
    # program's /proc/<pid>/cmdline reads empty, and `is_ours` would take the process for gone
    # (measured: 2% of starts on an idle machine, most of them on a busy one). A caller that
    # checks its service right away (dockerd's socket fails fast) judged a healthy start dead.
    deadline = time.monotonic() + 10.0
    while not _cmdline(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop_pid(pid: int, marker: str, *, grace_seconds: float = 30.0) -> bool:
    """SIGTERM `pid` if it is ours, wait up to `grace_seconds`, then SIGKILL. True if it is gone."""
    if not is_ours(pid, marker):
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not is_ours(pid, marker):
            _reap(pid)
            return True
        time.sleep(0.2)
    if is_ours(pid, marker):
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not is_ours(pid, marker):
                break
            time.sleep(0.1)
    _reap(pid)
    return not is_ours(pid, marker)


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for anything else this is a harmless no-op.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
