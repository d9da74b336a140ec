"""The maintenance and data-quality SQL files render for both engines and parse back."""

from __future__ import annotations

import pytest
import sqlglot

from marts.sqlfiles import SQL_DIR, count_of, parse, render
from ordertrack.warehouse.redshift_sql import vacuum_statements
from tests.marts.test_merge import ORDERS, SPATH, TRACKING

FILES = sorted([*(SQL_DIR / "dq").glob("*.sql"), *(SQL_DIR / "maintenance").glob("*.sql")])
RELATIONS = {
    "__raw__": ("settlement_public", "ecs_order_info_raw"),
    "__ledger__": ("settlement_public", "ordertrack_ingest_ledger"),
    "__tracking__": ("settlement_ods", "mart_uni_tracking_info"),
    "__orders_mart__": ("settlement_ods", "mart_ecs_order_info"),
    "__orders__": [("settlement_ods", "mart_ecs_order_info"), ("settlement_ods", "hist_ecs_order_info_2026_h1")],
    "__scan_events__": [("settlement_ods", "mart_uni_tracking_spath"), ("settlement_ods", "hist_uni_tracking_spath_2026_h1")],
    "__exceptions__": ("settlement_ods", "order_tracking_exceptions"),
}


@pytest.mark.parametrize("dialect", ["duckdb", "redshift"])
@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_file_renders_without_placeholders_and_parses_back(path, dialect):
    rel = {**RELATIONS, "__findings__": parse(SQL_DIR / "dq" / "order_without_scan_events.sql")}
    sql = render(path, dialect, rel)
    assert "__" not in sql.replace("/*", "").split("*/")[-1]
    sqlglot.parse_one(sql, read=dialect)


def test_the_retention_count_uses_the_delete_predicate():
    sql = render(count_of(parse(SQL_DIR / "maintenance" / "10_raw_retention.sql")), "redshift", RELATIONS)
    assert sql.startswith("SELECT COUNT(*) FROM \"settlement_public\".\"ecs_order_info_raw\" WHERE _ingested_at <")
    assert "merged_at IS NULL" in sql or "NOT l.merged_at IS NULL" in sql


def test_redshift_vacuum_is_delete_only_on_every_mart_and_sort_only_on_orders():
    assert vacuum_statements([TRACKING, ORDERS, SPATH]) == [
        'VACUUM DELETE ONLY "settlement_ods"."mart_uni_tracking_info"',
        'VACUUM DELETE ONLY "settlement_ods"."mart_ecs_order_info"',
        'VACUUM DELETE ONLY "settlement_ods"."mart_uni_tracking_spath"',
        'VACUUM SORT ONLY "settlement_ods"."mart_ecs_order_info"',
    ]
