"""Riding through an outage: back off, say so once when it starts and once when it ends.

A long-running process (the landing worker, the sidecar, the producer loop, the live workload
writer) meets services that go away for a while: Kafka restarting, the source failing over, the
warehouse file held by another process. It must neither crash nor flood the log, and an operator
must be able to see that it waits and for what. `Outage` keeps that state for one dependency;
`OutageReport` says how its user reports it (event names, gauge), so every user keeps its own
names; `retry_until_ok` is the blocking loop built on it, for code that runs in a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Gauge

from ordertrack.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")

WAITING = Gauge(
    "ordertrack_waiting_for_service",
    "1 while a long-running process waits out an outage of the named dependency",
    ["what"],
)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]


@dataclass(frozen=True)
class OutageReport:
    """How one kind of process reports its outages; the defaults are the worker's and sidecar's."""

    started: str = "outage.started"
    """Event logged (warning) once when an outage begins."""
    ended: str = "outage.ended"
    """Event logged (info) once when it ends, with its length and the failed attempts."""
    field: str | None = "what"
    """Log field that names the dependency; None when the event names alone say it."""
    gauge: Gauge | None = WAITING
    """Gauge labelled with the dependency's name, set while it is away and again when it is back."""
    gauge_down: float = 1.0
    """The gauge's value during an outage (0 for a gauge that says "up"); 1 - this after it."""
    hint: str = "retrying with backoff until it answers; nothing is dropped"
    describe: Callable[[BaseException], str] = describe
    """The `error` field of the started event."""


class Outage:
    """One dependency's outage state: when it began, how many attempts failed, the next delay."""

    def __init__(self, what: str, report: OutageReport = OutageReport(), *, first_delay: float = 0.5,
                 max_delay: float = 30.0) -> None:
        self.what = what
        self.report = report
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException | str, **context: object) -> float:
        """Record a failed attempt (`exc`, or its description); return how long to wait before
        the next one."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            r = self.report
            if r.gauge is not None:
                r.gauge.labels(self.what).set(r.gauge_down)
            log.warning(r.started, **self._named(), error=exc if isinstance(exc, str) else r.describe(exc),
                        hint=r.hint, **context)
        return min(self.max_delay, self.first_delay * 2 ** min(self.failures - 1, 16))

    def recovered(self, **context: object) -> None:
        if self.since is None:
            return
        r = self.report
        log.info(r.ended, **self._named(), seconds=round(time.monotonic() - self.since, 1),
                 failed_attempts=self.failures, **context)
        if r.gauge is not None:
            r.gauge.labels(self.what).set(1 - r.gauge_down)
        self.since, self.failures = None, 0

    def _named(self) -> dict[str, str]:
        return {self.report.field: self.what} if self.report.field else {}


def retry_until_ok(fn: Callable[[], T], outage: Outage, stop: threading.Event | None = None) -> T:
    """Call `fn` until it returns; each failure waits the outage's backoff. A stop request while
    waiting re-raises the last error, so the caller ends the way it would have without retrying.
    An error that waiting cannot cure (bad configuration, a refused request) is raised at once."""
    while True:
        try:
            out = fn()
        except Exception as exc:
            if not worth_waiting(exc):
                raise
            delay = outage.failed(exc)
            if stop is not None and stop.wait(delay):
                raise
            if stop is None:
                time.sleep(delay)
            continue
        outage.recovered()
        return out


def worth_waiting(exc: BaseException) -> bool:
    """False for our own errors that name something to fix (exit codes other than 4)."""
    from ordertrack.errors import OrdertrackError, SecurityError, ServiceUnavailableError, TransientError

    if isinstance(exc, SecurityError):
        return False
    if isinstance(exc, OrdertrackError):
        return isinstance(exc, (ServiceUnavailableError, TransientError)) and "refused" not in str(exc)
    return True

