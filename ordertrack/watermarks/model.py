"""The watermark record: one per table, the latest one wins (the topic is compacted by table)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import orjson

WatermarkStatus = Literal["committed", "seeded", "set", "imported", "backfill"]
"""committed: a window was published; seeded / set / imported: moved by an operator;
backfill: a chunk of `ordertrack backfill` was published, which never moves the live position."""

BACKFILL_KEY_SUFFIX = ".backfill"
"""Backfill records are keyed `<table>.backfill.<run id>` (a table name holds no dot): compaction
keeps the newest record per key, so a backfill record under the table's key would in time erase its
live one, and one key per run keeps each run's resume point (its newest record) for good."""


@dataclass(frozen=True)
class Watermark:
    table: str
    position: int
    """Unix seconds: every row version with a cursor below this has been published."""
    status: WatermarkStatus
    window_id: str | None = None
    window_start: int | None = None
    row_count: int = 0
    dead_lettered: int = 0
    # partition -> offset after the window's last row there, for the partitions it wrote to:
    # a consumer has the whole window once it has seen offset (end - 1) of each.
    partition_end_offsets: dict[int, int] = field(default_factory=dict)
    hold_seconds: int = 0
    hold_reason: str | None = None
    null_cursor_rows: int = 0
    written_at: float = field(default_factory=time.time)
    note: str | None = None
    run_id: str | None = None
    """Backfill records: the run they belong to, and the period [run_start, run_end) it publishes."""
    run_start: int | None = None
    run_end: int | None = None
    seconds: float | None = None
    """How long the window took, from planning to commit."""

    @property
    def window_end(self) -> int:
        return self.position

    @property
    def live(self) -> bool:
        """True for the table's live position; False for a backfill window's record."""
        return self.status != "backfill"

    @property
    def key(self) -> bytes:
        """The record's key in the compacted watermark topic."""
        if self.live:
            return self.table.encode()
        return f"{self.table}{BACKFILL_KEY_SUFFIX}{'.' + self.run_id if self.run_id else ''}".encode()

    def to_json(self) -> bytes:
        d = asdict(self)
        d["partition_end_offsets"] = {str(k): v for k, v in self.partition_end_offsets.items()}
        return orjson.dumps(d)

    @classmethod
    def from_json(cls, raw: bytes) -> "Watermark":
        d = orjson.loads(raw)
        d["partition_end_offsets"] = {int(k): v for k, v in (d.get("partition_end_offsets") or {}).items()}
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})
