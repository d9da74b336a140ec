from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson

from ordertrack.config import load_pipeline_config
from ordertrack.tables import TableRegistry
from producers.rows import BadRow, Encoded, dead_letter_value, encode_row

SPATH = TableRegistry(load_pipeline_config()).get("uni_tracking_spath")


def row(**kw):
    base = {"id": 7, "order_id": 100, "traceSeq": 2, "pathTime": 1_800_000_000, "event_code": "X"}
    return base | kw


def test_good_row_keeps_exact_values():
    enc = encode_row(SPATH, row(amount=Decimal("12.30"), at=dt.datetime(2026, 1, 2, 3, 4, 5), note=b"ok"))
    assert isinstance(enc, Encoded)
    assert orjson.loads(enc.key) == {"order_id": 100, "traceSeq": 2}
    v = orjson.loads(enc.value)
    assert v["amount"] == "12.30" and v["at"] == "2026-01-02T03:04:05+00:00" and v["note"] == "ok"
    assert enc.cursor == 1_800_000_000


def test_integral_decimal_cursor_is_accepted():
    assert isinstance(encode_row(SPATH, row(pathTime=Decimal("1800000000"))), Encoded)


def test_bad_rows_say_why():
    assert encode_row(SPATH, row(order_id=None)).reason == "key column(s) order_id are NULL"
    assert encode_row(SPATH, row(pathTime=None)).reason == "cursor column pathTime is NULL"
    assert "not an integer" in encode_row(SPATH, row(pathTime=Decimal("1.5"))).reason
    assert "not an integer" in encode_row(SPATH, row(pathTime="1800000000")).reason
    assert "cannot be serialized" in encode_row(SPATH, row(blob=b"\xff")).reason
    assert "cannot be serialized" in encode_row(SPATH, row(obj=object())).reason


def test_dead_letter_carries_reason_and_coordinates_even_for_unserializable_rows():
    bad = encode_row(SPATH, row(blob=b"\xff"))
    assert isinstance(bad, BadRow)
    d = orjson.loads(dead_letter_value(SPATH, bad, "uni_tracking_spath:1-2"))
    assert d["reason"].startswith("row cannot be serialized")
    assert d["source"] == "kuaisong.uni_tracking_spath" and d["window_id"] == "uni_tracking_spath:1-2"
    assert d["key"] == {"order_id": "100", "traceSeq": "2"} and d["tie_breaker"] == "7"
    assert d["row"]["blob"] == "b'\\xff'"
