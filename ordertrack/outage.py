"""Riding through an outage: back off, say so once when it starts and once when it ends.

A long-running process (the landing worker, the sidecar) meets services that go away for a
while: Kafka restarting, the source failing over, the warehouse file held by another process.
It must neither crash nor flood the log, and an operator must be able to see that it waits and
for what. `Outage` keeps that state for one dependency; `retry_until_ok` is the blocking loop
built on it, for code that runs in a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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


class Outage:
    """One dependency's outage state: when it began, how many attempts failed, the next delay."""

    def __init__(self, what: str, *, first_delay: float = 0.5, max_delay: float = 30.0) -> None:
        self.what = what
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, **context: object) -> float:
        """Record a failed attempt; return how long to wait before the next one."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            WAITING.labels(self.what).set(1)
            log.warning("outage.started", what=self.what, error=describe(exc),
                        hint="retrying with backoff until it answers; nothing is dropped", **context)
        return min(self.max_delay, self.first_delay * 2 ** min(self.failures - 1, 16))

    def recovered(self, **context: object) -> None:
        if self.since is None:
            return
        log.info("outage.ended", what=self.what, seconds=round(time.monotonic() - self.since, 1),
                 failed_attempts=self.failures, **context)
        WAITING.labels(self.what).set(0)
        self.since, self.failures = None, 0


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
    from ordertrack.errors import OrdertrackError, ServiceUnavailableError, TransientError

    if isinstance(exc, OrdertrackError):
        return isinstance(exc, (ServiceUnavailableError, TransientError)) and "refused" not in str(exc)
    return True


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500]
