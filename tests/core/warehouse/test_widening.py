"""Which warehouse column types widen when the source widens (pure logic)."""

from __future__ import annotations

import pytest

from ordertrack.warehouse.types import widened


@pytest.mark.parametrize(("current", "wanted", "expect"), [
    ("DECIMAL(12,2)", "DECIMAL(12,3)", "DECIMAL(13,3)"),   # the scale grows, no integer digit is lost
    ("DECIMAL(12,2)", "DECIMAL(14,2)", "DECIMAL(14,2)"),
    ("DECIMAL(12,2)", "DECIMAL(10,2)", None),               # narrower: the column already holds it
    ("DECIMAL(12,2)", "DECIMAL(12,2)", None),
    ("INTEGER", "BIGINT", "BIGINT"),
    ("BIGINT", "INTEGER", None),
    ("SMALLINT", "INTEGER", "INTEGER"),
    ("INTEGER", "DECIMAL(12,2)", "DECIMAL(12,2)"),
    ("BIGINT", "DECIMAL(12,2)", "DECIMAL(21,2)"),
    ("DECIMAL(12,2)", "BIGINT", "DECIMAL(21,2)"),
    ("DECIMAL(36,2)", "DECIMAL(12,10)", "DECIMAL(38,10)"),  # capped at 38 digits
    ("VARCHAR(512)", "VARCHAR(4096)", "VARCHAR(4096)"),
    ("VARCHAR(4096)", "VARCHAR(512)", None),
    ("VARCHAR", "VARCHAR(65535)", None),                    # DuckDB: no length, holds any
    ("character varying(512)", "VARCHAR(1024)", "VARCHAR(1024)"),
    ("numeric(12,2)", "DECIMAL(12,3)", "DECIMAL(13,3)"),
    ("VARCHAR(512)", "BIGINT", None),                       # a change of kind is not widened
    ("TIMESTAMP", "DATE", None),
])
def test_widened(current, wanted, expect):
    assert widened(current, wanted) == expect
