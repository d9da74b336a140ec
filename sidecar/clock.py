"""Time, injectable: the scheduler asks a clock for now and to wait, so tests drive it instantly."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        """Return at `when`, or as soon as `stop` is set."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        # Short waits, re-measured: a suspended host or a stepped clock does not oversleep a slot.
        while not stop.is_set():
            left = (when - self.now()).total_seconds()
            if left <= 0:
                return
            stop.wait(min(left, 30.0))
