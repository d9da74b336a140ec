"""Debezium change envelopes -> the flat rows landing takes.

A change event's value is `{before, after, source, op, ts_ms}`. The row it lands as is the row
image (`after`; `before` for a delete) plus the change's metadata in `cdc_*` columns: the
operation, the source's commit time, and the binlog position (file, position, row in the event)
that orders a key's versions in the marts. A tombstone is not a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import orjson

from consumers.staging import RawMessage
from ordertrack.warehouse.types import Column

CDC_COLUMNS = (
    Column("cdc_op", "VARCHAR(1)"),        # r (snapshot read), c, u, d
    Column("cdc_ts_ms", "BIGINT"),          # when the source committed the change (1 s resolution on MySQL)
    Column("cdc_file", "VARCHAR(255)"),     # binlog file ...
    Column("cdc_pos", "BIGINT"),            # ... position in it ...
    Column("cdc_row", "INTEGER"),           # ... and row within the event: a key's versions in commit order
    Column("cdc_snapshot", "VARCHAR(32)"),  # true/first/last/...: read by the initial snapshot
)
OPS = {"r", "c", "u", "d"}


def unwrap(messages: Sequence[RawMessage]) -> list[RawMessage]:
    """Each envelope as its flat row; what is not a change event keeps its bytes and says why it
    will be rejected."""
    return [_unwrap(m) for m in messages]


def _unwrap(m: RawMessage) -> RawMessage:
    if m.value is None:
        return replace(m, reason="a tombstone, not a change (run the connector with tombstones.on.delete=false)")
    try:
        doc = orjson.loads(m.value)
    except orjson.JSONDecodeError:
        return m  # the engine says: not UTF-8, or not valid JSON
    op = doc.get("op") if isinstance(doc, dict) else None
    source = doc.get("source") if isinstance(doc, dict) else None
    row = (doc.get("before") if op == "d" else doc.get("after")) if op in OPS else None
    if not isinstance(row, dict) or not isinstance(source, dict):
        return replace(m, reason="not a Debezium change event (no op, source and row image)")
    snapshot = source.get("snapshot")
    flat = {**row, "cdc_op": op, "cdc_ts_ms": source.get("ts_ms"), "cdc_file": source.get("file"),
            "cdc_pos": source.get("pos"), "cdc_row": source.get("row"),
            "cdc_snapshot": None if snapshot is None else str(snapshot)}
    return replace(m, value=orjson.dumps(flat))
