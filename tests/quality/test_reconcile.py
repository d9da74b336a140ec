"""`ordertrack dq reconcile` on a million-row table: MariaDB source against the DuckDB mart and its
history, finding exactly the planted missing, extra and stale keys."""

from __future__ import annotations

import json

import pytest

from quality.reconcile import reconcile

pytestmark = pytest.mark.integration

ROWS = 1_000_000
T = 1_700_000_000
MISSING = [1, 17, 500_000, 999_999]          # deleted from the mart
EXTRA_IN_MART = [250_000, 1_000_005]          # deleted from the source / only in the mart
STALE = [3, 123_456, 777_777, 999_998]        # the mart holds an older version
ARCHIVED = range(600_000, 600_100)            # in a history table, not the mart: not a difference
UNTIL = T + 86_400                            # past every cursor: no pipeline carried these rows


@pytest.fixture(scope="module")
def million(make_env_module, mariadb_admin):
    env = make_env_module()
    admin = mariadb_admin
    with admin.cursor() as cur:
        cur.execute(f"INSERT INTO `{env.db}`.uni_tracking_info (order_id, tracking_number, carrier_code, add_time, update_time) "
                    f"SELECT seq, CONCAT('TN', seq), 'ZTO', {T}, {T} + seq % 86400 FROM seq_1_to_{ROWS}")
        cur.execute(f"DELETE FROM `{env.db}`.uni_tracking_info WHERE order_id = 250000")
    ex = env.engine()
    ex.in_transaction(lambda run: [run(s, {}) for s in (
        "CREATE TABLE settlement_ods.mart_uni_tracking_info AS SELECT CAST(range AS BIGINT) AS order_id, "
        f"CAST({T} + range % 86400 AS BIGINT) AS update_time, 1 AS state FROM range(1, {ROWS + 1})",
        f"DELETE FROM settlement_ods.mart_uni_tracking_info WHERE order_id IN ({', '.join(map(str, MISSING))})",
        f"INSERT INTO settlement_ods.mart_uni_tracking_info VALUES (1000005, {T}, 1)",
        f"UPDATE settlement_ods.mart_uni_tracking_info SET update_time = update_time - 3600 "
        f"WHERE order_id IN ({', '.join(map(str, STALE))})",
        "CREATE TABLE settlement_ods.hist_uni_tracking_info_2024_h1 AS SELECT * FROM settlement_ods.mart_uni_tracking_info "
        f"WHERE order_id BETWEEN {ARCHIVED.start} AND {ARCHIVED.stop - 1}",
        f"DELETE FROM settlement_ods.mart_uni_tracking_info WHERE order_id BETWEEN {ARCHIVED.start} AND {ARCHIVED.stop - 1}",
    )])
    return env


def test_reconcile_finds_exactly_the_planted_keys_in_a_million_rows(million):
    r = million.cli("dq", "reconcile", "--table", "uni_tracking_info", "--until", str(UNTIL), "--json", "--limit", "100")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert [k["order_id"] for k in out["missing"]] == MISSING
    assert [k["order_id"] for k in out["extra"]] == EXTRA_IN_MART
    assert [k["order_id"] for k in out["stale"]] == STALE
    assert all(k["mart_cursor"] == k["source_cursor"] - 3600 for k in out["stale"])
    assert out["counts"] == {"missing": 4, "extra": 2, "stale": 4}
    # Chunked hashes: a few thousand rows fetched from each side, not a million.
    assert out["rows_fetched"] < 20_000, out["rows_fetched"]


def test_reconcile_since_keeps_a_stale_key_stale_when_the_mart_version_is_older_than_since(million):
    # 999_998's source version is T + 49_598; the mart's (T + 45_998) is older than --since.
    since = T + 48_000
    r = million.cli("dq", "reconcile", "--table", "uni_tracking_info", "--since", str(since), "--until", str(UNTIL),
                    "--json")
    out = json.loads(r.stdout)
    expect = lambda keys: [k for k in keys if (T + k % 86400) >= since]  # noqa: E731
    assert [k["order_id"] for k in out["stale"]] == expect(STALE)
    assert [k["order_id"] for k in out["missing"]] == expect(MISSING)
    assert 999_998 in [k["order_id"] for k in out["stale"]]


def test_a_clean_table_exits_zero(million):
    from quality.reconcile import SqlSide

    spec = million.spec("uni_tracking_info")
    engine = million.engine()
    mart = SqlSide("a", engine.query, spec, '"settlement_ods"."mart_uni_tracking_info"', "duckdb", None)
    same = SqlSide("b", engine.query, spec, '"settlement_ods"."mart_uni_tracking_info"', "duckdb", None)
    result = reconcile(spec.name, spec.key_columns, mart, same)
    assert result.clean and result.rows_fetched == 0
