"""A column the source widens is widened in raw, the mart and history before its wider values land;
a value no warehouse column can hold is a dead letter naming the column. Never a silent change
(issue 11.5)."""

from __future__ import annotations

import json

import pytest

from tests.support.kafka_source import consume_all, db_now, insert
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

COLS = ("order_id", "order_sn", "partner_id", "user_id", "add_time", "goods_amount", "shipping_id", "address")


def publish_and_land(env, admin, rows: list[tuple]) -> None:
    insert(admin, f"`{env.db}`.ecs_order_info", COLS, rows)
    newest = max(r[4] for r in rows)
    wait_until("the source clock to pass the new rows", lambda: db_now(admin) > newest)
    r = env.cli("produce", "--once")
    assert r.returncode == 0, r.stderr
    r = env.cli("consume", "--drain")
    assert r.returncode == 0, r.stderr


def test_widened_source_columns_widen_the_warehouse_and_what_cannot_fit_is_a_dead_letter(make_env, mariadb_admin):
    env = make_env(buffer_minutes=0, lookback_minutes=30)
    spec = env.spec("ecs_order_info")
    t = db_now(mariadb_admin)
    publish_and_land(env, mariadb_admin, [(1, "SN1", 7, 1, t, "12.34", 3, "Main St 1")])
    # A half-year history table, as archival makes them (the same columns as the mart).
    history = f"{spec.mart_schema}.hist_{spec.name}_2026_h1"
    engine = env.engine()
    engine.query(f"CREATE TABLE {history} AS SELECT * FROM {spec.mart_schema}.{spec.mart_table} WHERE false")
    engine.close()  # DuckDB: one writer at a time, and the next landing is another process

    with mariadb_admin.cursor() as cur:
        cur.execute(f"ALTER TABLE `{env.db}`.ecs_order_info MODIFY goods_amount DECIMAL(12,3) NOT NULL DEFAULT 0, "
                    "MODIFY shipping_id BIGINT UNSIGNED NOT NULL DEFAULT 0, MODIFY address LONGTEXT NOT NULL")
    t = db_now(mariadb_admin)
    publish_and_land(env, mariadb_admin, [
        (2, "SN2", 7, 1, t, "12.345", 5_000_000_000, "Main St 2"),   # needs DECIMAL(13,3) and BIGINT
        (3, "SN3", 7, 1, t, "1.5", 4, "x" * 900_000),                 # no warehouse VARCHAR holds it
        (4, "SN4", 7, 1, t, "7.125", 5, "Main St 4"),
    ])

    engine = env.engine()
    types = dict(engine.query("SELECT column_name, data_type FROM information_schema.columns "
                              "WHERE table_schema = ? AND table_name = ?", [spec.mart_schema, spec.mart_table]))
    assert (types["goods_amount"], types["shipping_id"]) == ("DECIMAL(13,3)", "BIGINT")
    hist_types = dict(engine.query("SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_schema = ? AND table_name = ?", [spec.mart_schema, history.split(".")[1]]))
    assert (hist_types["goods_amount"], hist_types["shipping_id"]) == ("DECIMAL(13,3)", "BIGINT")
    assert engine.raw_columns(spec)["goods_amount"] == "DECIMAL(13,3)"
    mart = {r[0]: r[1:] for r in engine.query(
        f"SELECT order_id, CAST(goods_amount AS VARCHAR), shipping_id FROM {spec.mart_schema}.{spec.mart_table}")}
    # Every value exactly as the source holds it; the rows landed before the change keep theirs.
    assert mart == {1: ("12.340", 3), 2: ("12.345", 5_000_000_000), 4: ("7.125", 5)}

    (exc,) = engine.query(f"SELECT kafka_offset, notes FROM {spec.mart_schema}.order_tracking_exceptions "
                          "WHERE exception_type = 'dead_letter'")
    assert exc[1].startswith("the value of address is ") and exc[1].endswith("bytes, more than the 65535 of VARCHAR")
    letters = [json.loads(m.value()) for m in consume_all(env.bootstrap, env.config.kafka.dead_letter_topic)]
    assert [(d["offset"], d["value_truncated"]) for d in letters] == [(exc[0], True)]
