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
    ("DECIMAL(36,2)", "DECIMAL(12,10)", "DECIMAL(38,4)"),   # capped at 38 digits: integer digits first
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


@pytest.mark.parametrize(("current", "wanted", "expect"), [
    ("INTEGER", "DECIMAL(38,30)", "DECIMAL(38,28)"),     # integer digits kept at the cap, the scale gives way
    ("DECIMAL(38,10)", "DECIMAL(38,12)", None),           # no room: values with 12 decimals are dead letters
    ("DATE", "TIMESTAMP", "TIMESTAMP"),
])
def test_widened_at_the_cap_and_dates(current, wanted, expect):
    assert widened(current, wanted) == expect


def test_duckdb_rejects_exactly_what_would_change_and_lands_the_rest(tmp_path):
    """DuckDB itself (no other service): the value checks of the landing, past double precision too."""
    import orjson

    from consumers.staging import RawMessage, stage
    from ordertrack.config import load_pipeline_config
    from ordertrack.tables import TableRegistry
    from ordertrack.warehouse.duckdb_engine import DuckDBEngine
    from ordertrack.warehouse.engine import MisfitColumns
    from ordertrack.warehouse.types import Column

    spec = TableRegistry(load_pipeline_config()).get("ecs_order_info")
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    engine.ensure_raw_table(spec, [Column("order_id", "BIGINT"), Column("goods_amount", "DECIMAL(18,2)"),
                                   Column("weight_kg", "DECIMAL(38,10)"), Column("paid_on", "DATE"),
                                   Column("shipping_id", "INTEGER"), Column("add_time", "BIGINT")])
    rows = [
        {"order_id": 1, "goods_amount": "258299092013197.47", "weight_kg": "8621798.9815357344", "paid_on": "2024-01-01",
         "shipping_id": 9_007_199_254_740_993 % 1000, "add_time": 1},
        {"order_id": 2, "goods_amount": "258299092013197.473"},           # 18 digits: a DOUBLE cannot tell
        {"order_id": 3, "weight_kg": "8621798.981535734449"},            # 12 decimals in a scale of 10
        {"order_id": 4, "paid_on": "2024-01-01 12:34:56"},                # a time of day a DATE drops
        {"order_id": 5, "shipping_id": 12.5},
        {"order_id": 6, "goods_amount": "-0.50", "weight_kg": "1e-3", "shipping_id": "7", "paid_on": "2024-02-29T00:00:00"},
    ]
    staged = stage([RawMessage(0, i, orjson.dumps(r), "w") for i, r in enumerate(rows)])
    with pytest.raises(MisfitColumns) as raised:  # the lander's first try: widen before rejecting
        engine.land(spec, spec.topic, staged, misfits="raise")
    assert raised.value.columns == {"goods_amount", "weight_kg", "paid_on", "shipping_id"}
    assert engine.next_offsets(spec.topic) == {}  # nothing committed
    result = engine.land(spec, spec.topic, staged)
    assert sorted(r["offset"] for r in result.rejected) == [1, 2, 3, 4]
    assert [r["reason"].split(" ")[3] for r in sorted(result.rejected, key=lambda r: r["offset"])] == [
        "goods_amount", "weight_kg", "paid_on", "shipping_id"]
    assert result.landed == 2
