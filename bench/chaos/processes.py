"""The harness's children: started, watched, stopped by the harness; their logs read as events."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.chaos.settings import LOAD, PIPELINE, STOP_GRACE, Layout, emit


@dataclass
class Exit:
    """A child that exited without the harness asking it to."""

    name: str
    role: str
    instance: int
    pid: int
    code: int
    at: float
    last_lines: list[str]
    phase: str = ""


class Proc:
    """One child process of the harness, its instances numbered, each with its own log files."""

    def __init__(self, name: str, role: str, argv: list[str], layout: Layout) -> None:
        self.name, self.role, self.argv, self.layout = name, role, argv, layout
        self.instance = 0
        self.popen: subprocess.Popen | None = None
        self.expected_exit = False

    @property
    def log(self) -> Path:
        return self.layout.logs / f"{self.name}.{self.instance}.log"

    @property
    def out(self) -> Path:
        return self.layout.logs / f"{self.name}.{self.instance}.out"

    def start(self) -> None:
        self.instance += 1
        self.expected_exit = False
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        with open(self.out, "wb") as out, open(self.log, "wb") as err:
            # Its own session: a Ctrl-C on the harness's terminal reaches the harness only, which
            # then stops everything in order.
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                          cwd=self.layout.state, env=self.layout.env(), start_new_session=True)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        self.expected_exit = True
        if self.running():
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout) if self.popen else None
        except subprocess.TimeoutExpired:
            return None

    def tail_lines(self, n: int = 3) -> list[str]:
        try:
            lines = [x for x in self.log.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return []
        return [x[:400] for x in lines[-n:]]


class Supervisor:
    """Starts, watches and stops the children; notes every exit nobody asked for."""

    def __init__(self, layout: Layout, specs: dict[str, tuple[str, list[str]]]) -> None:
        self.layout = layout
        self.procs = {name: Proc(name, role, argv, layout) for name, (role, argv) in specs.items()}
        self.exits: list[Exit] = []
        self.down: list[str] = []  # exited by themselves, waiting to be restarted

    def __getitem__(self, name: str) -> Proc:
        return self.procs[name]

    def start(self, name: str) -> Proc:
        p = self.procs[name]
        p.start()
        self._save_pids()
        emit("process.started", process=name, instance=p.instance, pid=p.pid)
        return p

    def check(self) -> list[Exit]:
        """Note children that exited by themselves since the last check."""
        new = []
        for p in self.procs.values():
            if p.popen is None or p.expected_exit or p.name in self.down or p.running():
                continue
            ex = Exit(p.name, p.role, p.instance, p.pid, p.popen.returncode, time.time(), p.tail_lines())
            new.append(ex)
            self.down.append(p.name)
            emit("process.exited_by_itself", process=p.name, role=p.role, instance=p.instance, code=ex.code,
                 last_line=ex.last_lines[-1] if ex.last_lines else "")
        self.exits.extend(new)
        return new

    def restart_down(self) -> None:
        """Bring back what exited by itself (already recorded), so later faults still measure."""
        self.check()
        for name in list(self.down):
            if self.procs[name].role in (PIPELINE, LOAD):
                self.down.remove(name)
                self.start(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        p = self.procs[name]
        p.signal(sig)
        return p.wait(30)

    def stop(self, name: str, grace: float = STOP_GRACE) -> dict[str, Any]:
        """SIGTERM, then SIGKILL after `grace`: how it ended and whether it had to be killed."""
        p = self.procs[name]
        if name in self.down:
            self.down.remove(name)
        if not p.running():
            p.expected_exit = True
            return {"code": p.popen.returncode if p.popen else None, "killed": False, "seconds": 0.0}
        began = time.time()
        p.signal(signal.SIGTERM)
        code = p.wait(grace)
        killed = code is None
        if killed:
            p.signal(signal.SIGKILL)
            code = p.wait(30)
        seconds = round(time.time() - began, 1)
        emit("process.stopped", process=name, code=code, killed_after_grace=killed, seconds=seconds)
        return {"code": code, "killed": killed, "seconds": seconds}

    def stop_all(self) -> None:
        for name, p in self.procs.items():
            if p.running():
                self.stop(name, grace=30)

    def _save_pids(self) -> None:
        pids = {n: p.pid for n, p in self.procs.items() if p.running()}
        self.layout.pids.write_text(json.dumps(pids))


class LogTail:
    """The JSON events a child wrote to its log since the last read (structlog: one object a line)."""

    def __init__(self, path: Path, from_start: bool = False) -> None:
        self.path = path
        self.pos = 0 if from_start or not path.exists() else path.stat().st_size
        self.partial = b""

    def events(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return []
        self.pos += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        return [e for e in map(parse_event, lines) if e is not None]


def parse_event(line: bytes | str) -> dict[str, Any] | None:
    try:
        e = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # faust's own lines and tracebacks are not events
    return e if isinstance(e, dict) and "event" in e else None


def event_time(e: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(e["timestamp"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def events_of(paths: list[Path], name: str) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        out += [e for e in map(parse_event, text.splitlines()) if e is not None and e["event"] == name]
    return out


