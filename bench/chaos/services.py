"""The CLI under test, run as the harness's child, and the private stack it manages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.chaos.settings import HarnessError, Layout, emit


def ordertrack_argv(layout: Layout, *args: str) -> list[str]:
    # `-m` with PYTHONPATH=<code> runs the checkout named by --code, whatever the venv installed;
    # `--config <state>/...` also marks every child's command line as this run's.
    return [sys.executable, "-m", "ordertrack.cli.main", "--config", str(layout.config), *args]


def run_cli(layout: Layout, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(ordertrack_argv(layout, *args), capture_output=True, text=True, timeout=timeout,
                              env=layout.env(), cwd=layout.state)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"timed out after {timeout:.0f}s")


def cli_json(layout: Layout, *args: str, ok: tuple[int, ...] = (0,), timeout: float = 120.0) -> Any | None:
    """The command's JSON output, or None when it failed (a probe during an outage often does)."""
    r = run_cli(layout, *args, timeout=timeout)
    if r.returncode not in ok:
        return None
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return None


def last_line(text: str) -> str:
    lines = [x for x in (text or "").strip().splitlines() if x.strip()]
    return lines[-1][:300] if lines else ""


# -- pids: only our own processes are ever signalled -------------------------------------------------
def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def is_ours(pid: int, layout: Layout) -> bool:
    """Only a live process whose command line names our state folder is ever signalled by pid."""
    return alive(pid) and str(layout.state) in cmdline(pid)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return not alive(pid)


class PrivateStack:
    """`ordertrack stack up | down | status` under the private state folder and ports."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def up(self) -> float:
        began = time.time()
        # Its pipeline lands into DuckDB: no PostgreSQL (which, run as root, could not even reach a
        # state folder under pytest's private temporary folder).
        r = run_cli(self.layout, "stack", "up", "--json", "--no-postgres", timeout=600)
        if r.returncode != 0:
            raise HarnessError(f"`ordertrack stack up` of the private stack failed: {last_line(r.stderr)}")
        return round(time.time() - began, 1)

    def down(self) -> None:
        r = run_cli(self.layout, "stack", "down", "--json", timeout=300)
        emit("stack.down", code=r.returncode, error=last_line(r.stderr) if r.returncode else "")

    def pid(self, service: str) -> int:
        status = cli_json(self.layout, "stack", "status", "--json", ok=(0, 1), timeout=60) or {}
        for s in status.get("services", []):
            if s["name"] == service and s["pid"] and is_ours(s["pid"], self.layout):
                return int(s["pid"])
        raise HarnessError(f"the private stack's {service} is not running; cannot inject its fault")

    def signal(self, service: str, sig: int) -> int:
        pid = self.pid(service)
        os.kill(pid, sig)
        return pid


