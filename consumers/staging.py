"""Kafka messages -> an Arrow batch the warehouse parses (`ordertrack.warehouse.engine.STAGED_SCHEMA`).

Per message only what cannot be done in bulk happens here: read partition, offset and the
window header, and check the value is UTF-8 text. JSON parsing is left to the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from ordertrack.warehouse.engine import STAGED_SCHEMA


@dataclass(frozen=True)
class RawMessage:
    """The parts of a Kafka record landing needs; built from confluent-kafka or aiokafka records."""

    partition: int
    offset: int
    value: bytes | None
    window_id: str | None = None
    timestamp_ms: int | None = None


def stage(messages: Iterable[RawMessage]) -> pa.Table:
    parts, offsets, windows, values, reasons = [], [], [], [], []
    for m in messages:
        parts.append(m.partition)
        offsets.append(m.offset)
        windows.append(m.window_id)
        if m.value is None:
            values.append(None)
            reasons.append("empty value (tombstone)")
            continue
        try:
            values.append(m.value.decode("utf-8"))
            reasons.append(None)
        except UnicodeDecodeError:
            values.append(None)
            reasons.append("value is not UTF-8 text")
    return pa.Table.from_arrays(
        [pa.array(parts, pa.int32()), pa.array(offsets, pa.int64()), pa.array(windows, pa.string()),
         pa.array(values, pa.string()), pa.array(reasons, pa.string())],
        schema=STAGED_SCHEMA,
    )


def header(headers: list[tuple[str, bytes]] | None, name: str) -> str | None:
    for k, v in headers or ():
        if k == name:
            return v.decode() if isinstance(v, (bytes, bytearray)) else v
    return None
