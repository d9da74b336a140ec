"""The maintenance and data-quality SQL files render for both engines and parse back."""

from __future__ import annotations

import pytest
import sqlglot

from marts import SQL_DIR
from ordertrack.warehouse.redshift_sql import vacuum_statements
from ordertrack.warehouse.sqlfiles import count_of, parse, render
from quality.runner import DQ_SQL
from tests.marts.test_merge import ORDERS, SPATH, TRACKING

FILES = sorted([*DQ_SQL.glob("*.sql"), *(SQL_DIR / "maintenance").glob("*.sql")])
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
    rel = {**RELATIONS, "__findings__": parse(DQ_SQL / "order_without_scan_events.sql")}
    sql = render(path, dialect, rel)
    assert "__" not in sql.replace("/*", "").split("*/")[-1]
    sqlglot.parse_one(sql, read=dialect)


def test_the_retention_count_uses_the_delete_predicate():
    sql = render(count_of(parse(SQL_DIR / "maintenance" / "10_raw_retention.sql")), "redshift", RELATIONS)
    assert sql.startswith("SELECT COUNT(*) FROM \"settlement_public\".\"ecs_order_info_raw\" WHERE _ingested_at <")
    assert "NOT l.merged_at IS NULL" in sql  # only merged batches


def test_counts_come_from_the_statement_they_precede():
    update = render(count_of(parse(DQ_SQL / "resolve_cleared.sql")), "redshift", RELATIONS)
    assert update.startswith('SELECT COUNT(*) FROM "settlement_ods"."order_tracking_exceptions" WHERE exception_type =')
    insert = render(count_of(parse(DQ_SQL / "record_table_finding.sql")), "redshift", RELATIONS)
    assert insert.startswith("SELECT COUNT(*) FROM (SELECT CAST(NULL AS BIGINT) AS c0, %(exception_type)s AS c1")
    sqlglot.parse_one(update, read="redshift"), sqlglot.parse_one(insert, read="redshift")


def test_redshift_vacuum_is_delete_only_on_every_mart_and_sort_only_on_orders():
    assert vacuum_statements([TRACKING, ORDERS, SPATH]) == [
        'VACUUM DELETE ONLY "settlement_ods"."mart_uni_tracking_info"',
        'VACUUM DELETE ONLY "settlement_ods"."mart_ecs_order_info"',
        'VACUUM DELETE ONLY "settlement_ods"."mart_uni_tracking_spath"',
        'VACUUM SORT ONLY "settlement_ods"."mart_ecs_order_info"',
    ]


def test_inline_statements_of_the_run_table_and_the_exceptions_render_for_redshift():
    """The run store and the exceptions commands write their SQL inline; on Redshift it must parse too."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from ordertrack.warehouse.job_runs import RunStore
    from quality import exceptions

    seen: list[str] = []

    def answer(sql: str) -> list[tuple]:
        if sql.startswith("SELECT MAX"):
            return [(None,)]  # the job never ran
        if sql.startswith("SELECT COUNT"):
            return [(1,)]  # one open exception
        return []

    class Session:
        def __call__(self, sql, params):
            seen.append(sql)
            return answer(sql)

        def lock(self, name):
            pass

    class Recorder(SimpleNamespace):
        def in_transaction(self, fn):
            return fn(Session())

    engine = Recorder(dialect="redshift", placeholder="%s", raw_schema="settlement_public", mart_schema="settlement_ods")
    exceptions.resolve(engine, order_id=1, exception_type="dead_letter", note="n", by="b")
    exceptions.list_exceptions(engine, exception_type="dead_letter", order_id=1)
    store, now = RunStore(engine), datetime.now(timezone.utc)
    store.last_scheduled("dq")
    store.finish(store.begin("dq", now, now), "succeeded", now, figures={"n": 1})
    store.register("vacuum", now, now)
    store.recent(5, "dq")
    assert len(seen) == 9  # resolve: count + update; list; last slot; begin: busy + insert; finish; register; recent
    for sql in seen:
        assert "__" not in sql and "%(" in sql
        sqlglot.parse_one(sql, read="redshift")
