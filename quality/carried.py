"""How far the pipeline has carried a table: the cursor below which every source version has had
its chance to reach the mart. `dq reconcile` compares up to there by default, so a healthy live
pipeline reconciles clean while the source keeps changing above it.

A window's rows are in the mart once every batch holding them has been merged: per partition, the
ledger's first unmerged offset (or its end when all is merged) must have passed the end offsets of
that window and of every window before it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ordertrack.identifiers import quote_ansi as q
from ordertrack.warehouse.engine import LEDGER_TABLE, WarehouseEngine
from ordertrack.watermarks.model import Watermark


def merged_next_offsets(engine: WarehouseEngine, topic: str) -> dict[int, int]:
    """Partition -> the first offset whose rows may not be in the mart yet."""
    rows = engine.query(
        f"SELECT partition, MIN(CASE WHEN merged_at IS NULL THEN first_offset END), MAX(last_offset) + 1 "
        f"FROM {q(engine.raw_schema)}.{q(LEDGER_TABLE)} WHERE topic = {engine.placeholder} GROUP BY partition",
        [topic])
    return {int(p): int(unmerged if unmerged is not None else end) for p, unmerged, end in rows}


def carried_until(marks: Iterable[Watermark], merged: dict[int, int]) -> int | None:
    """The position of the newest record (oldest first in `marks`, one table) whose window, and
    every window before it, is wholly in the mart; None when not even the oldest one is."""
    ends: dict[int, int] = {}
    carried: int | None = None
    for m in sorted(marks, key=lambda w: w.written_at):
        for p, end in m.partition_end_offsets.items():
            ends[p] = max(ends.get(p, 0), end)
        if not all(merged.get(p, 0) >= end for p, end in ends.items()):
            break
        carried = m.position if carried is None else max(carried, m.position)
    return carried


def binlog_carried_until(engine: WarehouseEngine, tables: list[tuple[str, str]], topic: str) -> int | None:
    """A Debezium table has no windows: what is merged reaches as far as the source commit time of
    its newest merged change (read from the mart and history, which retention never trims), in
    unix seconds; None when nothing is merged yet. The caller takes the window buffer off, for
    cursors stamped before their transaction committed, as for the poller."""
    union = " UNION ALL ".join(f"SELECT MAX(cdc_ts_ms) AS ts FROM {q(s)}.{q(t)} WHERE _kafka_topic = {engine.placeholder}"
                               for s, t in tables)
    newest = engine.query(f"SELECT MAX(ts) FROM ({union}) AS m", [topic] * len(tables))[0][0]
    return None if newest is None else int(newest) // 1000
