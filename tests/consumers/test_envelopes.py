"""Debezium change envelopes become flat rows with their change metadata (pure)."""

from __future__ import annotations

import orjson

from consumers.envelopes import unwrap
from consumers.staging import RawMessage

SOURCE = {"file": "binlog.000002", "pos": 4711, "row": 3, "ts_ms": 1_800_000_000_000, "snapshot": "false"}


def envelope(op: str, before: dict | None, after: dict | None, **source: object) -> bytes:
    return orjson.dumps({"before": before, "after": after, "source": {**SOURCE, **source}, "op": op, "ts_ms": 1})


def test_the_row_image_with_its_change_metadata():
    row = {"order_id": 7, "goods_amount": "12.345"}  # decimal.handling.mode=string: exact
    [c, d, r] = unwrap([RawMessage(0, 0, envelope("c", None, row)),
                        RawMessage(0, 1, envelope("d", row, None)),
                        RawMessage(1, 0, envelope("r", None, row, snapshot="last"))])
    assert orjson.loads(c.value) == {**row, "cdc_op": "c", "cdc_ts_ms": 1_800_000_000_000, "cdc_file": "binlog.000002",
                                     "cdc_pos": 4711, "cdc_row": 3, "cdc_snapshot": "false"}
    assert orjson.loads(d.value)["cdc_op"] == "d" and orjson.loads(d.value)["order_id"] == 7  # the before image
    assert orjson.loads(r.value)["cdc_snapshot"] == "last"
    assert (c.reason, d.reason, r.reason) == (None, None, None)


def test_a_tombstone_or_a_foreign_message_is_rejected_with_its_reason_never_landed_as_a_row():
    tomb, foreign, notjson = unwrap([RawMessage(0, 0, None), RawMessage(0, 1, b'{"order_id": 1}'),
                                     RawMessage(0, 2, b"\xff")])
    assert "tombstone" in tomb.reason
    assert "not a Debezium change event" in foreign.reason and foreign.value == b'{"order_id": 1}'
    assert notjson.reason is None and notjson.value == b"\xff"  # the engine names it: not UTF-8
