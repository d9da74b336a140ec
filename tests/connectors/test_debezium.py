"""Binlog CDC on the real Kafka Connect, Debezium and MariaDB: the connector applied from the
pipeline YAML, its change events landed by the same drain into the same raw tables, the marts
kept by binlog position (issue 12)."""

from __future__ import annotations

import json

import pytest

from ordertrack.settings import load_settings
from tests.support.kafka_source import db_now, insert
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

ORDER_COLS = ("order_id", "order_sn", "partner_id", "user_id", "add_time", "goods_amount", "address")
TRACK_COLS = ("order_id", "tracking_number", "carrier_code", "state", "add_time", "update_time")


def source_rows(admin, db: str, table: str, columns: tuple[str, ...]) -> dict:
    with admin.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM `{db}`.`{table}`")
        return {r[0]: tuple(str(v) for v in r[1:]) for r in cur.fetchall()}


def mart_rows(env, table: str, columns: tuple[str, ...]) -> dict:
    spec = env.spec(table)
    engine = env.engine()
    try:
        rows = engine.query(f"SELECT {', '.join(f'CAST({c} AS VARCHAR)' for c in columns)} "
                            f"FROM {spec.mart_schema}.{spec.mart_table}")
    except Exception:  # the mart is created by the first landing
        return {}
    finally:
        engine.close()
    return {int(r[0]): tuple(str(v) for v in r[1:]) for r in rows}


def test_snapshot_inserts_updates_and_deletes_reach_the_marts_by_binlog_order(make_env, mariadb_admin, connect_url):
    env = make_env(strategy="debezium")
    orders, tracking = f"`{env.db}`.ecs_order_info", f"`{env.db}`.uni_tracking_info"
    t = db_now(mariadb_admin)
    insert(mariadb_admin, orders, ORDER_COLS, [(i, f"SN{i}", 7, 1, t - 100, "1.00", "old") for i in range(1, 6)])
    insert(mariadb_admin, tracking, TRACK_COLS, [(i, f"TN{i}", "SF", 1, t - 100, t - 100) for i in range(1, 6)])

    r = env.cli("connectors", "apply", "--json")
    assert r.returncode == 0, r.stderr
    applied = json.loads(r.stdout)
    assert applied["created"] and applied["state"] == "RUNNING" and applied["source_checked"], applied
    again = env.cli("connectors", "apply", "--json", "--wait", "0")  # idempotent: nothing to change
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] == {}, again.stdout + again.stderr

    with mariadb_admin.cursor() as cur:
        cur.execute(f"INSERT INTO {orders} (order_id, order_sn, partner_id, user_id, add_time, goods_amount, address) "
                    f"VALUES (6, 'SN6', 7, 1, {t}, 6.00, 'new'), (7, 'SN7', 7, 1, {t}, 7.00, 'new')")
        cur.execute(f"UPDATE {orders} SET goods_amount = 2.50 WHERE order_id = 2")
        # Two updates of one row in one second, the later one with an OLDER cursor (a writer's
        # clock went back): by cursor the first would win; the binlog says the second came later.
        cur.execute(f"UPDATE {tracking} SET state = 2, update_time = {t + 5} WHERE order_id = 3")
        cur.execute(f"UPDATE {tracking} SET state = 3, update_time = {t + 4} WHERE order_id = 3")
        cur.execute(f"DELETE FROM {orders} WHERE order_id = 4")
        cur.execute(f"DELETE FROM {tracking} WHERE order_id = 4")

    want_orders = source_rows(mariadb_admin, env.db, "ecs_order_info", ("order_id", "goods_amount", "address"))
    want_tracking = source_rows(mariadb_admin, env.db, "uni_tracking_info", ("order_id", "state", "update_time"))
    assert 4 not in want_orders and want_tracking[3] == ("3", str(t + 4))

    def marts_equal_source() -> bool:
        r = env.cli("consume", "--drain")
        assert r.returncode == 0, r.stderr
        return (mart_rows(env, "ecs_order_info", ("order_id", "goods_amount", "address")) == want_orders
                and mart_rows(env, "uni_tracking_info", ("order_id", "state", "update_time")) == want_tracking)

    wait_until("the marts to equal the source", marts_equal_source, timeout=180, every=2)

    engine = env.engine()
    spec = env.spec("ecs_order_info")
    ops = dict(engine.query(f"SELECT cdc_op, COUNT(*) FROM {spec.raw_schema}.{spec.raw_table} GROUP BY cdc_op"))
    repeated = engine.query(f"SELECT COUNT(*) - COUNT(DISTINCT (_kafka_partition, _kafka_offset)) "
                            f"FROM {spec.raw_schema}.{spec.raw_table}")[0][0]
    engine.close()
    # every change once: 5 snapshot reads, 2 inserts, 1 update, 1 delete (a delete is a row, a tombstone is not)
    assert ops == {"r": 5, "c": 2, "u": 1, "d": 1} and repeated == 0, ops
    for table in ("ecs_order_info", "uni_tracking_info"):
        rec = env.cli("dq", "reconcile", "--table", table, "--until", "2100-01-01T00:00:00Z", "--json")
        assert rec.returncode == 0, (table, rec.stdout, rec.stderr)  # a key deleted in both is consistent
        carried = env.cli("dq", "reconcile", "--table", table, "--json")  # bound: the newest merged change
        assert carried.returncode == 0 and json.loads(carried.stdout)["until_from"] == "carried", carried.stdout
    dq = env.cli("dq", "run", "--json")  # no watermark is not stale for a Debezium table; extraction says so
    assert dq.returncode == 0, dq.stdout + dq.stderr
    extraction = next(c for c in json.loads(dq.stdout)["checks"] if c["check"] == "extraction")
    assert all("binlog CDC" in d["note"] for d in extraction["details"]), extraction

    status = env.cli("connectors", "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["binlog_position"]["file"], status.stdout


@pytest.fixture
def cdc_account(mariadb_admin):
    """A second CDC account (name, password) the test grants as it likes; dropped afterwards."""
    import uuid

    name = f"cdc_{uuid.uuid4().hex[:6]}"
    password = load_settings().connect.mysql_password.get_secret_value()  # the Connect worker's
    with mariadb_admin.cursor() as cur:
        cur.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (password,))
    yield name, password
    with mariadb_admin.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")


def test_a_missing_grant_or_a_wrong_password_is_one_sentence_naming_the_fix(make_env, mariadb_admin, connect_url,
                                                                          cdc_account):
    env = make_env(strategy="debezium")
    user, password = cdc_account
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT ON `{env.db}`.* TO '{user}'@'%'")
        cur.execute(f"GRANT RELOAD, BINLOG MONITOR ON *.* TO '{user}'@'%'")  # no REPLICATION SLAVE
    r = env.cli("connectors", "apply", CONNECT_MYSQL_USER=user)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "lacks REPLICATION SLAVE" in r.stderr and f"GRANT REPLICATION SLAVE ON *.* TO '{user}'" in r.stderr, r.stderr

    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'")
        cur.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", (password + "-changed",))
    # Where `apply` runs with the password, it says so itself ...
    r = env.cli("connectors", "apply", CONNECT_MYSQL_USER=user)
    assert r.returncode == 2 and "cannot log in" in r.stderr and "CDC_MYSQL_PASSWORD" in r.stderr, r.stderr
    # ... and where it does not, Connect's validation (Debezium logging in) refuses it: one sentence.
    r = env.cli("connectors", "apply", CONNECT_MYSQL_USER=user, CDC_MYSQL_PASSWORD="")
    assert r.returncode == 2 and r.stderr.count("error:") == 1, r.stderr
    assert "Access denied" in r.stderr and user in r.stderr, r.stderr
    for out in (r.stdout, r.stderr):
        assert password not in out
    assert env.cli("connectors", "status").returncode == 1  # nothing was created
