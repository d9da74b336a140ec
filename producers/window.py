"""Planning a table's next window: `[watermark, end)` with a safe `end`.

`end` comes from the source database's clock minus the buffer, never from ours. It is then held
back so the watermark never passes rows the source has not committed yet:

* to the start of the oldest write transaction still open on the source: its rows carry a cursor
  no older than its start (a poller that reads past it loses them when it commits; the old
  JDBC-poller hole);
* by the replica's lag behind its primary, when the source is a replica.

The hold is capped at `max_hold_minutes`; past that the window goes on (with a warning) rather
than stall behind an idle session that forgot to commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HoldReason = Literal["open_transaction", "replica_lag", "max_hold_reached"]


@dataclass(frozen=True)
class BackfillRun:
    """One `ordertrack backfill` of a table: the period [start, end) it re-publishes, under its id."""

    run_id: str
    start: int
    end: int


@dataclass(frozen=True)
class SourceClock:
    """What the source said about time, measured at the start of a window."""

    db_now: int
    oldest_open_trx_start: int | None = None
    replica_lag_seconds: int | None = None


@dataclass(frozen=True)
class Window:
    table: str
    start: int
    end: int
    unheld_end: int
    hold_reason: HoldReason | None

    @property
    def id(self) -> str:
        # Deterministic: a redone window (after a crash) carries the same id.
        return f"{self.table}:{self.start}-{self.end}"

    @property
    def hold_seconds(self) -> int:
        # A window planned from a start past its unheld end is empty, not held back.
        return max(0, self.unheld_end - self.end)

    @property
    def empty(self) -> bool:
        return self.end <= self.start


def plan_window(
    table: str,
    watermark: int | None,
    clock: SourceClock,
    *,
    lookback_minutes: int,
    buffer_minutes: int,
    max_hold_minutes: int,
    start_override: int | None = None,
    end_override: int | None = None,
) -> Window:
    """The next window of `table`. Pure: every input is passed in."""
    unheld = clock.db_now - buffer_minutes * 60
    if end_override is not None:
        unheld = min(unheld, end_override)
    end = unheld
    reason: HoldReason | None = None
    if clock.replica_lag_seconds:
        lagged = clock.db_now - buffer_minutes * 60 - clock.replica_lag_seconds
        if lagged < end:
            end, reason = lagged, "replica_lag"
    if clock.oldest_open_trx_start is not None and clock.oldest_open_trx_start < end:
        end, reason = clock.oldest_open_trx_start, "open_transaction"
    floor = unheld - max_hold_minutes * 60
    if end < floor:
        end, reason = floor, "max_hold_reached"
    if start_override is not None:
        start = start_override
    elif watermark is not None:
        start = watermark
    else:
        start = clock.db_now - lookback_minutes * 60
    return Window(table=table, start=start, end=max(end, start), unheld_end=unheld, hold_reason=reason)
