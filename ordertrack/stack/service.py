"""The contract every local-stack service keeps, so `stack up/down/status` need no branches."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from ordertrack.errors import ServiceUnavailableError
from ordertrack.log import get_logger
from ordertrack.stack.process import running_pid, stop_pid

log = get_logger(__name__)

ServiceState = Literal["running", "unhealthy", "stopped", "off"]
"""`off`: an optional service nothing asked for (not a failure, unlike `stopped`)."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    state: ServiceState
    pid: int | None
    detail: str = ""


class Service(Protocol):
    name: str

    def check_tools(self) -> None:
        """Raise MissingToolError naming what to install; called by `stack up` before anything starts."""

    def up(self) -> ServiceStatus:
        """Fetch, initialise and start the service if needed and wait until it is healthy; idempotent."""

    def down(self) -> ServiceStatus:
        """Stop the process `up` started (by its pid), if it runs."""

    def status(self) -> ServiceStatus:
        """Report the state without changing anything."""

    def env(self) -> dict[str, str]:
        """Connection variables for `.stack/.env`, with the names a production deployment uses."""


class PidTracked:
    """Shared by the services `up` starts as a process: its pid file, identity marker and `down`."""

    name: str
    pid_file: Path
    marker: str  # a path under the state folder that the process's argv or cwd names
    grace_seconds: float = 30.0

    def running_pid(self) -> int | None:
        return running_pid(self.pid_file, self.marker)

    def down(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is not None:
            stop_pid(pid, self.marker, grace_seconds=self.grace_seconds)
            log.info("stack.stopped", service=self.name, pid=pid)
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    def wait_healthy(self, healthy: Callable[[], bool], *, timeout: float, interval: float,
                     not_ready: str, log_file: Path) -> None:
        """Poll `healthy` until it holds; fail at once if the process died, or after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if healthy():
                return
            if self.running_pid() is None:
                raise ServiceUnavailableError(f"{self.name} exited during start-up; see {log_file}.")
            time.sleep(interval)
        raise ServiceUnavailableError(f"{not_ready} within {timeout:.0f}s; see {log_file}.")

    def status(self) -> ServiceStatus:  # pragma: no cover - every service defines it
        raise NotImplementedError
