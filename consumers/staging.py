"""Kafka messages -> an Arrow batch the warehouse parses (`ordertrack.warehouse.engine.STAGED_SCHEMA`).

Per message only what cannot be done in bulk happens here (partition, offset, window header);
the values are parsed once, later (`ordertrack.warehouse.typed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message

from ordertrack.warehouse.engine import STAGED_SCHEMA


@dataclass(frozen=True)
class RawMessage:
    """The parts of a Kafka record landing needs; built from confluent-kafka or aiokafka records."""

    partition: int
    offset: int
    value: bytes | None
    window_id: str | None = None
    timestamp_ms: int | None = None
    reason: str | None = None
    """Why the message is rejected before the engine parses it (e.g. a tombstone), if it is."""


TOMBSTONE = "empty value (tombstone)"
"""The reason of a message without a value."""


def stage(messages: Sequence[RawMessage]) -> pa.Table:
    """One Arrow row per distinct (partition, offset); a message repeated in the batch counts once."""
    unique = list({(m.partition, m.offset): m for m in messages}.values())
    values = [m.value for m in unique]
    return pa.Table.from_arrays(
        [
            pa.array([m.partition for m in unique], pa.int32()),
            pa.array([m.offset for m in unique], pa.int64()),
            pa.array([m.window_id for m in unique], pa.string()),
            pa.array(values, pa.binary()),
            pa.array([m.reason or (None if m.value is not None else TOMBSTONE) for m in unique],
                     pa.string()),
        ],
        schema=STAGED_SCHEMA,
    )


class Gathered:
    """Records of one topic gathered column by column, as a drain reads them: no object per
    message that the cyclic garbage collector would scan again and again (a backfill reads
    millions), one Arrow table when the batch lands."""

    def __init__(self) -> None:
        self.partitions: list[int] = []
        self.offsets: list[int] = []
        self.values: list[bytes | None] = []
        self.window_ids: list[bytes | str | None] = []

    def add(self, m: Message, partition: int, offset: int) -> None:
        self.partitions.append(partition)
        self.offsets.append(offset)
        self.values.append(m.value())
        self.window_ids.append(window_id(m))

    def extend(self, partitions: list[int], offsets: list[int], values: list[bytes | None],
               window_ids: list[bytes | str | None]) -> None:
        """Many records at once, column by column (`window_id` of each)."""
        self.partitions += partitions
        self.offsets += offsets
        self.values += values
        self.window_ids += window_ids

    def __len__(self) -> int:
        return len(self.offsets)

    def last_offsets(self) -> dict[int, int]:
        last: dict[int, int] = {}
        for p, o in zip(self.partitions, self.offsets):
            if o > last.get(p, -1):
                last[p] = o
        return last

    def _windows(self) -> list[str | None]:
        return [_text(w) if isinstance(w, (bytes, bytearray)) else w for w in self.window_ids]

    def staged(self) -> pa.Table:
        """As `stage` would stage the same records (a repeated (partition, offset) counts once)."""
        partitions, offsets = pa.array(self.partitions, pa.int32()), pa.array(self.offsets, pa.int64())
        distinct = pa.table({"p": partitions, "o": offsets}).group_by(["p", "o"]).aggregate([]).num_rows
        if distinct != len(self):
            return stage(self.messages())
        try:
            windows = pa.array(self.window_ids, pa.binary()).cast(pa.string())
        except pa.ArrowInvalid:  # not UTF-8 (not our producer's): kept, its odd bytes escaped
            windows = pa.array(self._windows(), pa.string())
        values = pa.array(self.values, pa.binary())
        tombstones = pc.if_else(values.is_null(), pa.scalar(TOMBSTONE), pa.scalar(None, pa.string()))
        return pa.Table.from_arrays([partitions, offsets, windows, values, tombstones], schema=STAGED_SCHEMA)

    def messages(self) -> list[RawMessage]:
        return [RawMessage(p, o, v, w) for p, o, v, w in zip(self.partitions, self.offsets, self.values, self._windows())]


def window_id(m: Message) -> bytes | str | None:
    """The record's window id header (bytes, as Kafka holds it; text when searched for)."""
    headers = cast("list[tuple[str, bytes | None]] | None", m.headers())
    # The producer writes the window id first; any other layout is searched.
    return headers[0][1] if headers and headers[0][0] == "window_id" else header(headers, "window_id")


def key_reason(keys: list[str]) -> str:
    """Why a message whose object carries `keys` (no column can be named after them) is rejected."""
    names = ", ".join(_short(k) for k in keys[:5])
    return f"JSON key(s) {names} cannot be a column name (letters, digits, underscores; not a case variant of an existing column)"


def _short(key: str) -> str:
    """A key as the reason shows it: a poison key may be as long as the message itself."""
    return repr(key) if len(key) <= 64 else f"{key[:64]!r}... ({len(key)} characters)"


def last_offsets(messages: Sequence[RawMessage]) -> dict[int, int]:
    """Partition -> the highest offset among `messages` (where a reader has read up to)."""
    last: dict[int, int] = {}
    for m in messages:
        last[m.partition] = max(last.get(m.partition, -1), m.offset)
    return last


def header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    for k, v in headers or ():
        if k == name:
            return _text(v) if isinstance(v, (bytes, bytearray)) else v
    return None


def _text(header_value: bytes | bytearray) -> str:
    """A header as text: one that is not UTF-8 (written by another producer) keeps its odd bytes
    escaped (`\\xff`) rather than stop the landing of its message."""
    return bytes(header_value).decode(errors="backslashreplace")
