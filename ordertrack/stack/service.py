"""The contract every local-stack service keeps, so `stack up/down/status` need no branches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

ServiceState = Literal["running", "unhealthy", "stopped"]


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
