"""Progress of long work: a live bar on a terminal, structured events everywhere else.

Every command that can run for minutes (backfill, replay, consume --drain, dq reconcile, generate,
marts rebuild, archive) reports through `track`. On a terminal (stderr is a TTY) it draws a rich
progress bar with the count, the rate and the time left; under cron, systemd or a container it logs
one `progress` event every `every` seconds and one `progress.done` at the end, so the log shows the
same figures without control characters. `ORDERTRACK_PROGRESS=off` turns both off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ordertrack.log import get_logger

log = get_logger(__name__)


class Progress:
    """Counts done of `total` (None: unknown) in `unit`; `advance` and `note` are cheap to call often."""

    def __init__(self, what: str, total: float | None, unit: str, every: float) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0.0
        self.started = time.monotonic()
        self.fields: dict[str, Any] = {}
        self._every = every
        self._last_event = self.started
        self._bar: Any = None
        self._task: Any = None

    # -- figures ---------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Units per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.total or self.done <= 0 or self.done >= self.total:
            return None
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def snapshot(self) -> dict[str, Any]:
        eta = self.eta_seconds
        return {"what": self.what, "done": round(self.done, 3), "total": self.total, "unit": self.unit,
                "rate_per_second": round(self.rate, 1), "elapsed_seconds": round(self.elapsed, 1),
                "eta_seconds": None if eta is None else round(eta, 1), **self.fields}

    # -- updates ---------------------------------------------------------------------------------
    def advance(self, n: float = 1, **fields: Any) -> None:
        self.done += n
        self._changed(fields)

    def update(self, *, done: float | None = None, total: float | None = None, **fields: Any) -> None:
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        self._changed(fields)

    def _changed(self, fields: dict[str, Any]) -> None:
        self.fields.update(fields)
        if self._bar is not None:
            extra = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.fields.items())
            self._bar.update(self._task, completed=self.done, total=self.total, extra=extra)
            return
        now = time.monotonic()
        if self._every and now - self._last_event >= self._every:
            self._last_event = now
            log.info("progress", **self.snapshot())


def _enabled() -> bool:
    return os.environ.get("ORDERTRACK_PROGRESS", "on").lower() not in ("off", "0", "false", "no")


@contextmanager
def track(what: str, total: float | None = None, unit: str = "rows", *, every: float = 10.0,
          bar: bool | None = None) -> Iterator[Progress]:
    """Report progress of `what` while the block runs. `bar`: force the terminal bar on or off
    (default: on when stderr is a terminal)."""
    p = Progress(what, total, unit, every if _enabled() else 0.0)
    use_bar = _enabled() and (sys.stderr.isatty() if bar is None else bar)
    if not use_bar:
        try:
            yield p
        finally:
            if _enabled():
                log.info("progress.done", **p.snapshot())
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn(f"{unit}"), TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[extra]}")]
    rich_bar = RichProgress(*columns, console=Console(stderr=True), transient=False, refresh_per_second=4)

    class _Rate:  # rendered on every refresh, so the rate column is always current
        def __format__(self, spec: str) -> str:
            return f"{p.rate:,.0f} {unit}/s"

    with rich_bar:
        p._bar = rich_bar
        p._task = rich_bar.add_task(what, total=total, rate=_Rate(), extra="")
        try:
            yield p
        finally:
            rich_bar.update(p._task, completed=p.done, total=p.total)
