"""A value that does not fit its warehouse column as it is never lands changed (pure logic)."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest

from ordertrack.warehouse.fit import misfit, reject_misfits


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
    (True, "BOOLEAN", True),
    ("1234567890123456789012345678.1234567891", "DECIMAL(38,10)", True),   # past Python's 28 digits
    ("1234567890123456789012345678.12345678912", "DECIMAL(38,10)", False),
    ("2024-01-01", "DATE", True),
    ("2024-01-01T00:00:00", "DATE", True),
    ("2024-01-01 12:34:56", "DATE", False),
    (None, "INTEGER", True),
])
def test_misfit(value, wtype, fits):
    assert (misfit(value, wtype) is None) is fits


def test_reject_misfits_names_the_column_and_leaves_the_rest():
    staged = pa.table({
        "partition": pa.array([0, 0, 0], pa.int32()), "offset": pa.array([1, 2, 3], pa.int64()),
        "window_id": pa.array(["w"] * 3), "value": pa.array([orjson.dumps({"id": 1, "amount": "1.25"}),
                                                                 orjson.dumps({"id": 2, "amount": "1.255"}), None],
                                                                pa.binary()),
        "reject_reason": pa.array([None, None, "earlier"], pa.string()),
    })
    out, bad = reject_misfits(staged, {"id": "BIGINT", "amount": "DECIMAL(12,2)"})
    assert bad == {"amount"}
    assert out.column("reject_reason").to_pylist() == [
        None, "the value of amount would be rounded in DECIMAL(12,2) (more than 2 decimal places)", "earlier"]


def test_lower_case_column_names_find_mixed_case_keys():
    staged = pa.table({
        "partition": pa.array([0], pa.int32()), "offset": pa.array([1], pa.int64()), "window_id": pa.array(["w"]),
        "value": pa.array([orjson.dumps({"traceSeq": 12.5})], pa.binary()), "reject_reason": pa.array([None], pa.string()),
    })
    assert reject_misfits(staged, {"traceseq": "BIGINT"})[1] == {"traceseq"}
