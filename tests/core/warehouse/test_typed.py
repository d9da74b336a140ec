"""A value that does not fit its warehouse column as it is never lands changed (pure logic)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import orjson
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.staging import RawMessage, stage
from ordertrack.warehouse.typed import PIECE_ROWS, ParsedBatch, parse, typed


def misfit(value, wtype):
    """Why `value`, as a message carries it, does not fit a column of `wtype` (None: it fits)."""
    m = RawMessage(0, 0, orjson.dumps({"k": 1, "c": value}), "w")
    return typed(parse(stage([m])), {"k": "BIGINT", "c": wtype}, ["k"]).table.column("_reason")[0].as_py()


@pytest.mark.parametrize(("value", "wtype", "fits"), [
    ("12.34", "DECIMAL(12,2)", True),
    ("12.30", "DECIMAL(12,2)", True),
    ("12.345", "DECIMAL(12,2)", False),       # would be rounded to 12.35
    (12.345, "DECIMAL(12,2)", False),
    ("12345678901.5", "DECIMAL(12,2)", False),  # 11 integer digits in a column of 10
    (3_000_000_000, "INTEGER", False),
    (3_000_000_000, "BIGINT", True),
    (12.5, "INTEGER", False),
    (12.0, "INTEGER", True),
    ("first", "INTEGER", False),
    ("x" * 512, "VARCHAR(512)", True),
    ("é" * 300, "VARCHAR(512)", False),        # 600 bytes: Redshift counts bytes
    ("x" * 900_000, "VARCHAR(65535)", False),
    ("x" * 900_000, "VARCHAR", False),          # DuckDB's VARCHAR has no length: Redshift's limit applies
    (True, "BOOLEAN", True),
    ("maybe", "BOOLEAN", False),
    ("1234567890123456789012345678.1234567891", "DECIMAL(38,10)", True),   # past Python's 28 digits
    ("1234567890123456789012345678.12345678912", "DECIMAL(38,10)", False),
    ("2024-01-01", "DATE", True),
    ("2024-01-01T00:00:00", "DATE", True),
    ("2024-01-01 12:34:56", "DATE", False),
    ("2024-01-01T12:34:56+00:00", "TIMESTAMP", True),
    ("yesterday", "TIMESTAMP", False),
    ("1.5e3", "DOUBLE PRECISION", True),
    ({"a": 1}, "VARCHAR(64)", True),            # nested JSON lands as its text
    (1e200, "DECIMAL(18,2)", False),            # rejected, never a crash of the batch
    ("1e1000000000", "BIGINT", False),          # rejected without building the integer
    ("a\x00b", "VARCHAR", False),               # PostgreSQL and Redshift text cannot hold a NUL
    (20240105, "DATE", False),
    ("2024-01-05T00:00:00+05:00", "DATE", False),  # 19:00 the day before, in UTC
])
def test_misfit(value, wtype, fits):
    assert (misfit(value, wtype) is None) is fits


def test_typed_rows_name_the_column_that_does_not_fit_and_keep_the_rest():
    values = [{"id": 1, "amount": "12.34", "at": "2026-01-10T08:00:00+01:00"}, {"id": 2, "amount": "1.005"},
              {"amount": "1"}, b"\xff not utf-8", b"[1, 2]", b"{not json"]
    messages = [RawMessage(0, i, v if isinstance(v, bytes) else orjson.dumps(v), "w") for i, v in enumerate(values)]
    batch = typed(parse(stage(messages)), {"id": "BIGINT", "amount": "DECIMAL(12,2)", "at": "TIMESTAMP"}, ["id"],
                  declared=[0])
    rows = batch.table.to_pylist()
    assert [r["_reason"] for r in rows] == [
        None,
        "the value of amount would be rounded in DECIMAL(12,2) (more than 2 decimal places)",
        "key column(s) id missing or NULL",
        "value is not UTF-8 text",
        "key column(s) id missing or NULL",
        "value is not valid JSON",
    ]
    assert rows[0]["amount"] == Decimal("12.34") and rows[0]["at"] == dt.datetime(2026, 1, 10, 7, 0)
    assert rows[1]["amount"] is None and rows[1]["_order_id"] is None
    assert batch.misfit_columns == {"amount"}
    assert batch.table.schema.field("amount").type == pa.decimal128(12, 2)
    assert all(r["_declared"] for r in rows)


def test_numbers_keep_the_digits_the_message_carried():
    """orjson reads 1234567890123456.78 as a double; the column gets the message's own digits."""
    m = RawMessage(0, 0, b'{"k": 1, "a": 1234567890123456.78, "t": 1.10, "b": 123456789012345678901.0}', "w")
    row = typed(parse(stage([m])), {"k": "BIGINT", "a": "DECIMAL(18,2)", "t": "VARCHAR", "b": "DECIMAL(38,1)"},
                ["k"]).table.to_pylist()[0]
    assert (row["a"], row["t"], row["b"]) == (Decimal("1234567890123456.78"), "1.10", Decimal("123456789012345678901.0"))


def test_a_long_reason_is_cut_to_the_bytes_every_stage_holds():
    key = "é" * 60
    m = RawMessage(0, 0, orjson.dumps({"k": 1, **{f"{key}{i}": 1 for i in range(5)}}), "w")
    parsed = parse(stage([m]))
    parsed.reject_keys(set(parsed.keys) - {"k"}, lambda keys: "keys " + ", ".join(keys) * 3)
    reason = typed(parsed, {"k": "BIGINT"}, ["k"]).table.column("_reason")[0].as_py()
    assert reason.startswith("keys ") and len(reason.encode()) <= 1000


def test_a_rejected_message_still_names_its_order():
    m = RawMessage(1, 7, orjson.dumps({"order_id": 42, "n": "x"}), "w")
    row = typed(parse(stage([m])), {"order_id": "BIGINT", "n": "INTEGER"}, ["order_id"]).table.to_pylist()[0]
    assert (row["_order_id"], row["_declared"]) == (42, False)
    assert row["_reason"].startswith("the value of n ")


def _one_by_one(values: list, columns: dict[str, str]) -> list[tuple]:
    """The reference: each message alone, each column in order, as `typed` must decide."""
    out = []
    for v in values:
        row = typed(parse(stage([RawMessage(0, 0, json.dumps({"k": 1, **v}).encode(), "w")])), columns, ["k"]).table.to_pylist()[0]
        out.append(tuple(row[c] for c in ("_reason", *columns)))
    return out


scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=8),
                   st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["12.5", "1e3", "2024-01-01", "a\x00"]))


@given(st.lists(st.fixed_dictionaries({}, optional={"i": scalar, "n": scalar, "d": scalar, "t": scalar, "b": scalar}),
                min_size=1, max_size=30))
def test_a_batch_decides_each_message_as_it_would_alone(values):
    """Column by column with plain columns taken as they are, or value by value: the same result."""
    columns = {"k": "BIGINT", "i": "INTEGER", "n": "BIGINT", "d": "DECIMAL(12,2)", "t": "VARCHAR(16)", "b": "BOOLEAN"}
    batch = [RawMessage(0, o, json.dumps({"k": 1, **v}).encode(), "w") for o, v in enumerate(values)]
    rows = typed(parse(stage(batch)), columns, ["k"]).table.to_pylist()
    assert [tuple(r[c] for c in ("_reason", *columns)) for r in rows] == _one_by_one(values, columns)


# -- the vectorized read and typing agree with message-by-message -----------------------------------
WIDE = {"k": "BIGINT", "i": "INTEGER", "n": "BIGINT", "d": "DECIMAL(12,2)", "t": "VARCHAR(16)", "b": "BOOLEAN",
        "f": "DOUBLE PRECISION", "at": "TIMESTAMP"}


def _both_ways(raw_values: list[bytes], columns: dict[str, str],
               piece_rows: int = PIECE_ROWS) -> tuple[list[dict], list[dict], bool]:
    """(the rows as landing types them, the rows message by message from an eager parse, whether
    the vectorized read took the batch). Doubles are compared by their text: -0.0 == 0.0."""
    staged = stage([RawMessage(0, o, v, "w") for o, v in enumerate(raw_values)])
    fast = parse(staged, columns, piece_rows=piece_rows)
    eager = ParsedBatch(staged, None)
    eager.docs  # noqa: B018  # every message parsed now, as before the vectorized read existed

    def rows(table: pa.Table) -> list[dict]:
        return [{k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in table.to_pylist()]

    return (rows(typed(fast, columns, ["k"], piece_rows=piece_rows).table),
            rows(typed(eager, columns, ["k"], vectorized=False).table), fast.columns is not None)


@given(st.lists(st.fixed_dictionaries({"k": st.integers(1, 10)}, optional={
    "i": scalar, "n": scalar, "d": scalar, "t": scalar, "b": scalar, "f": scalar,
    "at": st.one_of(st.none(), st.sampled_from(["2024-01-01T10:00:00", "2024-01-01T10:00:00+02:00", "x"])),
    "extra": scalar}), min_size=1, max_size=30))
def test_the_vectorized_way_types_a_batch_as_message_by_message_does(values):
    fast, slow, _ = _both_ways([json.dumps(v).encode() for v in values], WIDE)
    assert fast == slow


@given(st.lists(st.fixed_dictionaries({"k": st.one_of(st.integers(1, 10), st.none())}, optional={
    "i": scalar, "d": scalar, "t": scalar, "f": scalar, "extra": scalar}), min_size=1, max_size=40),
    st.integers(1, 4))
def test_a_batch_typed_in_parts_is_typed_as_message_by_message(values, piece_rows):
    """Parts as small as one message: however a batch is cut, each message is decided as alone."""
    fast, slow, _ = _both_ways([json.dumps(v).encode() for v in values], WIDE, piece_rows=piece_rows)
    assert fast == slow


def test_a_plain_batch_takes_the_vectorized_way():
    values = [orjson.dumps({"k": i, "i": i, "n": 2**40, "d": "12.30", "t": "é" * 4, "b": True, "f": 1.5,
                            "at": "2024-01-01T10:00:00"}) for i in range(1, 50)]
    fast, slow, vectorized = _both_ways(values, WIDE)
    assert vectorized and fast == slow
    assert fast[0]["d"] == Decimal("12.30") and fast[0]["at"] == dt.datetime(2024, 1, 1, 10)


@pytest.mark.parametrize("odd", [
    b'{"k": 1}{"k": 2}',             # two objects in one message
    b'{"k": 1, "t": "a\nb"}',        # a raw line break inside text (not valid JSON)
    b'{"k": 1,\n"t": "b"}',          # a line break between tokens (valid JSON)
    b'{"k": 1, "k": 2}',             # a repeated key: the last wins, as orjson reads it
    b'{"k": 1, "t": "\xff"}',        # not UTF-8
    b'{"k": 1, "t": "\\ud800"}',     # a lone surrogate
    b'[{"k": 1}]',                   # not an object
    b'{"k": "1"}',                   # a key as text
    b'{"k": 1, "t": 5}',             # a number where text is expected
    b'{"k": 1, "t": "a\\u0000"}',    # a NUL
    b'{"k": 1, "i": 3000000000}',    # out of INTEGER's range
    b'{"k": 1, "d": "1.005"}',       # would be rounded
    b'{"k": 1, "t": "' + b"x" * 17 + b'"}',  # longer than VARCHAR(16)
    b'{"k": null}',
    b'{"k": 1} ',
    b'{"a": "}',                     # an unclosed string that could swallow the next message
    b'{"k": 1, "a": {}',             # an unclosed object
    b'{"k": 1, "f": NaN}',           # not JSON, which the reader takes
    b'{"k": 1, "f": Infinity}',
    b'{"k": 1, "f": 1.8e308}',       # past a double: inf to the reader
    b'{"k": 1, "f": 1' + b"0" * 400 + b'}',
    b'{"k": 1, "f": -0}',            # orjson reads the integer 0: no sign
    b'{"k": 1, "x": NaN}',           # in a key no column carries
    b'{"k": 1, "x": {"\xff": 1}}',   # a nested key that is not UTF-8
    b'{"k": 1, "x": ' + b"[" * 1100 + b"]" * 1100 + b'}',  # deeper than orjson reads
])
def test_an_odd_message_among_plain_ones_is_decided_as_it_would_be_alone(odd):
    plain = orjson.dumps({"k": 9, "t": "ok"})
    fast, slow, _ = _both_ways([plain, odd, plain, b'{"k": 2}', plain], WIDE)
    assert fast == slow
    fast, slow, _ = _both_ways([odd, b'{"k": 2, "i": 3000000000}'], WIDE)  # with a misfit beside it
    assert fast == slow


@pytest.mark.parametrize("odd", [
    b'{"k": 1, "t": "a\nb"}',        # not valid JSON: rejected before typing
    b'{"k": null}',                  # no key: rejected while typing
    b'{"k": 1, "i": 3000000000}',    # a value a cast refuses
    b'{"k": 1,\n"t": "b"}',          # valid JSON the joined read cannot take
])
def test_one_odd_message_leaves_the_rest_of_a_large_batch_to_the_vectorized_way(odd):
    """A backfill batch with a poison message in it is still typed by Arrow but for a part of at
    most twice `piece_rows` around that message."""
    plain = [orjson.dumps({"k": i, "i": i, "t": "ok", "f": 0.5}) for i in range(1, 1001)]
    values = plain[:700] + [odd] + plain[700:]
    staged = stage([RawMessage(0, o, v, "w") for o, v in enumerate(values)])
    rows = typed(parse(staged, WIDE, piece_rows=64), WIDE, ["k"], piece_rows=64)
    assert rows.vectorized_rows >= len(values) - 2 * 64
    fast, slow, _ = _both_ways(values, WIDE, piece_rows=64)
    assert fast == slow
    assert slow[700]["_reason"] == fast[700]["_reason"]


def test_a_rejected_message_whose_order_id_is_a_huge_float_names_no_order_and_stops_nothing():
    m = RawMessage(0, 0, b'{"order_id": 1e16, "n": "x"}', "w")
    cols = {"order_id": "BIGINT", "n": "INTEGER"}
    row = typed(parse(stage([m]), cols), cols, ["order_id"]).table.to_pylist()[0]
    assert (row["_reason"], row["_order_id"]) == ("the value of n does not convert to INTEGER without change", None)
