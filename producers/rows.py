"""Turning a source row into a Kafka record, or into a dead letter with the reason it failed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from ordertrack.tables import TableSpec


class Encoded(NamedTuple):
    """A row ready for Kafka (a tuple: one is built per source row, and a backfill reads millions)."""

    key: bytes
    value: bytes
    cursor: int


@dataclass(frozen=True)
class BadRow:
    reason: str
    row: dict[str, Any]


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)  # exact: a float would round money
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8")  # UnicodeDecodeError -> the row is dead-lettered
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    raise TypeError(f"cannot serialize a value of type {type(obj).__name__}")


_OPTS = orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=_OPTS)


def encode_row(spec: TableSpec, row: dict[str, Any]) -> Encoded | BadRow:
    """Validate the key and cursor of `row` and serialize it; never raises for bad data."""
    for c in spec.key_columns:
        if row.get(c) is None:
            missing = [c for c in spec.key_columns if row.get(c) is None]
            return BadRow(f"key column(s) {', '.join(missing)} are NULL", row)
    cursor = row.get(spec.cursor_column)
    if type(cursor) is not int:  # the common case first: an integer cursor needs no closer look
        if cursor is None:
            return BadRow(f"cursor column {spec.cursor_column} is NULL", row)
        if isinstance(cursor, bool) or not isinstance(cursor, (int, Decimal)) or cursor != int(cursor):
            return BadRow(f"cursor column {spec.cursor_column} is not an integer: {cursor!r}", row)
    try:
        value = dumps(row)
        key = dumps({c: row[c] for c in spec.key_columns})
    except (TypeError, UnicodeDecodeError, orjson.JSONEncodeError) as exc:
        return BadRow(f"row cannot be serialized: {exc}", row)
    return Encoded(key=key, value=value, cursor=int(cursor))


def dead_letter_value(spec: TableSpec, bad: BadRow, window_id: str, stage: str = "producer") -> bytes:
    """The dead-letter record: the reason, where the row came from, and the row as far as it serializes."""
    try:
        row_repr: Any = orjson.loads(dumps(bad.row))
    except (TypeError, UnicodeDecodeError, orjson.JSONEncodeError):
        row_repr = {k: repr(v) for k, v in bad.row.items()}
    return orjson.dumps(
        {
            "stage": stage,
            "table": spec.name,
            "source": spec.source_full_name,
            "reason": bad.reason,
            "window_id": window_id,
            "key": {c: repr(bad.row.get(c)) for c in spec.key_columns},
            "cursor": repr(bad.row.get(spec.cursor_column)),
            "tie_breaker": repr(bad.row.get(spec.id_column)),
            "row": row_repr,
            "detected_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
    )
