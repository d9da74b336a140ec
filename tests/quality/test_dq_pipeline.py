"""`ordertrack dq run` against the real pipeline: source (MariaDB), watermarks and lag (Kafka), raw
and marts (DuckDB). Each outside-the-warehouse check finds the defect planted for it."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.consumers.test_worker import stop
from tests.support.kafka_source import db_now, insert
from tests.support.pipeline_env import ORDERTRACK
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

ORDER_COLS = ("order_id", "order_sn", "partner_id", "user_id", "add_time")
TRACKING_COLS = ("order_id", "tracking_number", "carrier_code", "add_time", "update_time", "scan_count")
SCAN_COLS = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def seed_orders(conn, db: str, ids: range, t: int) -> None:
    """Orders added at t, scanned twice (t+60, t+120), tracking aligned with the newest scan."""
    insert(conn, f"`{db}`.ecs_order_info", ORDER_COLS, [(i, f"SN{i}", 7, 1, t) for i in ids])
    insert(conn, f"`{db}`.uni_tracking_info", TRACKING_COLS, [(i, f"TN{i}", "ZTO", t, t + 120, 2) for i in ids])
    insert(conn, f"`{db}`.uni_tracking_spath", SCAN_COLS,
           [(i, s, t + 60 * s, "SCAN", t + 60 * s) for i in ids for s in (1, 2)])


def landed(make_env, admin, ids: range, **dq_settings):
    """A private pipeline whose orders `ids` (added 15 minutes ago) are published and landed."""
    env = make_env(buffer_minutes=0, lookback_minutes=30, dq=dq_settings)
    now = db_now(admin)
    seed_orders(admin, env.db, ids, now - 900)
    assert env.cli("produce", "--once").returncode == 0
    assert env.cli("consume", "--drain").returncode == 0
    return env, now


def dq(env, *checks: str) -> tuple[int, dict]:
    args = [a for c in checks for a in ("--check", c)]
    r = env.cli("dq", "run", *args, "--json")
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout)


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["check"] == name)


def by_table(result: dict) -> dict[str, dict]:
    return {d["table"]: d for d in result["details"]}


def test_extraction_reconciliation_names_the_hop_that_lost_rows(make_env, mariadb_admin):
    env, now = landed(make_env, mariadb_admin, range(1, 41), extraction_lag_minutes=0, extraction_window_minutes=60)

    rc, report = dq(env, "extraction")
    figures = by_table(check(report, "extraction"))
    assert rc == 0 and report["healthy"], report
    assert {t: (f["source_rows"], f["published"], f["landed"], f["hops"]) for t, f in figures.items()} == {
        "ecs_order_info": (40, 40, 40, []), "uni_tracking_info": (40, 40, 40, []), "uni_tracking_spath": (80, 80, 80, [])}

    # Landing loses three orders (rows deleted from raw); the producer misses a scan event written
    # late with a cursor inside a window it had already published.
    env.engine().in_transaction(lambda ex: ex(
        "DELETE FROM settlement_public.ecs_order_info_raw WHERE order_id IN (5, 6, 7)", {}))
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SCAN_COLS, [(3, 9, now - 600, "LATE", now)])

    rc, report = dq(env, "extraction")
    result = check(report, "extraction")
    figures = by_table(result)
    assert rc == 1 and result["status"] == "found" and result["found"] == 2
    orders, scans = figures["ecs_order_info"], figures["uni_tracking_spath"]
    assert (orders["published"], orders["landed"], orders["lost_in_landing"], orders["hops"]) == (
        40, 37, 3, ["Kafka -> raw (landing)"])
    assert sorted(k[0] for k in orders["missing_sample"]) == [5, 6, 7]
    assert (scans["source_rows"], scans["published"], scans["lost_in_extraction"], scans["hops"]) == (
        81, 80, 1, ["source -> Kafka (producer)"])
    assert scans["missing_sample"] == [[3, 9, now - 600]]
    assert figures["uni_tracking_info"]["hops"] == []
    assert report["open_exceptions"] == {"extraction_gap": 2}

    # The exceptions name the table and the hop; a second run adds no duplicates.
    rc, report = dq(env, "extraction")
    assert check(report, "extraction")["new_exceptions"] == 0 and report["open_exceptions"] == {"extraction_gap": 2}
    r = env.cli("exceptions", "list", "--json")
    rows = {x["source_table"]: x for x in json.loads(r.stdout)}
    assert "Kafka and raw lost" in rows["ecs_order_info"]["notes"]
    assert "source and Kafka lost" in rows["uni_tracking_spath"]["notes"]


def test_dead_letters_are_accounted_for_and_never_blamed_on_a_hop(make_env, mariadb_admin):
    env, now = landed(make_env, mariadb_admin, range(1, 41), extraction_lag_minutes=0, extraction_window_minutes=60)
    # The source changes a column's type; the next order's value no longer fits raw's DECIMAL column,
    # so the landing rejects it to the dead letters while the order after it lands.
    with mariadb_admin.cursor() as cur:
        cur.execute(f"ALTER TABLE `{env.db}`.ecs_order_info MODIFY goods_amount VARCHAR(20) NOT NULL DEFAULT '0'")
    later = db_now(mariadb_admin)
    insert(mariadb_admin, f"`{env.db}`.ecs_order_info", (*ORDER_COLS, "goods_amount"),
           [(41, "SN41", 7, 1, later, "n/a"), (42, "SN42", 7, 1, later, "12.50")])
    wait_until("the source clock to pass the new rows", lambda: db_now(mariadb_admin) > later)
    assert env.cli("produce", "--once").returncode == 0
    assert env.cli("consume", "--drain").returncode == 0

    rc, report = dq(env, "extraction")
    orders = by_table(check(report, "extraction"))["ecs_order_info"]
    assert (orders["source_rows"], orders["published"], orders["rejected_at_landing"], orders["landed"]) == (42, 42, 1, 41)
    assert orders["hops"] == [] and orders["lost_in_landing"] == orders["lost_in_extraction"] == 0
    assert check(report, "extraction")["found"] == 0
    # The dead letter is the one finding, on its own line; exit 1 because it is open.
    assert rc == 1 and report["open_exceptions"] == {"dead_letter": 1}, report


def test_freshness_finds_a_stale_watermark_and_consumer_lag(make_env, mariadb_admin):
    env, now = landed(make_env, mariadb_admin, range(1, 6), max_lag_messages=10, max_watermark_age_minutes=30)
    rc, report = dq(env, "freshness")
    assert rc == 0 and check(report, "freshness")["status"] == "ok", report

    # 20 more scan events published but not landed; the orders watermark moved two hours back.
    later = db_now(mariadb_admin)
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SCAN_COLS, [(1, 10 + s, later, "SCAN", later) for s in range(20)])
    wait_until("the source clock to pass the new rows", lambda: db_now(mariadb_admin) > later)  # the next window ends after them
    assert env.cli("produce", "--once").returncode == 0
    r = env.cli("watermarks", "set", "--table", "ecs_order_info", "--at", str(now - 7200))
    assert r.returncode == 0, r.stderr

    rc, report = dq(env, "freshness")
    result = check(report, "freshness")
    details = {d["table"]: d for d in result["details"]}
    assert rc == 1 and result["found"] == 2, details
    assert details["ecs_order_info"]["stale_watermark"].startswith("watermark 1")
    assert details["uni_tracking_spath"]["lag_messages"] >= 20 and "consumer lag" in details["uni_tracking_spath"]["lagging"]
    assert report["open_exceptions"] == {"consumer_lag": 1, "stale_watermark": 1}

    # Landing catches up: the lag exception resolves itself on the next run; the watermark stays stale.
    assert env.cli("consume", "--drain").returncode == 0
    rc, report = dq(env, "freshness")
    assert rc == 1 and check(report, "freshness")["resolved_exceptions"] == 1
    assert report["open_exceptions"] == {"stale_watermark": 1}


def test_dq_run_everything_on_a_clean_pipeline_exits_zero_and_an_open_exception_exits_one(make_env, mariadb_admin):
    env, _ = landed(make_env, mariadb_admin, range(1, 11), extraction_lag_minutes=0, extraction_window_minutes=60)
    rc, report = dq(env)
    assert rc == 0, report
    assert [c["check"] for c in report["checks"]] == ["extraction", "alignment", "no_scan_events",
                                                      "reactivated_without_order", "freshness", "consolidation"]
    assert {c["status"] for c in report["checks"]} == {"ok"}

    r = env.cli("dq", "run", "--check", "nonsense")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "the checks are extraction" in r.stderr

    # An operator-visible failure: a dead letter from landing stays open until resolved.
    env.engine().in_transaction(lambda ex: ex(
        "INSERT INTO settlement_ods.order_tracking_exceptions (order_id, exception_type, detected_at, notes) "
        "VALUES (4, 'dead_letter', now(), 'value is not valid JSON')", {}))
    r = env.cli("dq", "run", "--check", "consolidation")
    assert r.returncode == 1 and "dead_letter" in r.stdout
    r = env.cli("exceptions", "resolve", "--order-id", "4", "--type", "dead_letter", "--note", "replayed by hand",
                "--by", "ops")
    assert r.returncode == 0 and "resolved 1" in r.stdout
    assert env.cli("dq", "run", "--check", "consolidation").returncode == 0


def test_before_anything_landed_freshness_still_alarms(make_env):
    env = make_env()
    rc, report = dq(env, "freshness", "alignment")
    assert rc == 1
    assert (check(report, "freshness")["status"], check(report, "freshness")["found"]) == ("found", 3)
    assert check(report, "alignment")["status"] == "skipped"
    assert report["open_exceptions"] == {"stale_watermark": 3}


def test_a_healthy_live_pipeline_reconciles_clean_while_the_workload_keeps_writing(make_env, mariadb_admin, settings,
                                                                                  tmp_path):
    """By default `dq reconcile` compares what the pipeline has had the chance to carry: up to the
    newest window wholly merged. Without that bound a live pipeline never reconciles clean."""
    # A live workload needs the window buffer: rows are stamped before their transaction commits.
    env = make_env(buffer_minutes=1)
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO '{settings.workload.user}'@'%'")
    env_vars = {**os.environ, **env.env_vars, "MYSQL_DATABASE": env.db}
    started = []

    def start(name: str, *args: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")
        proc = subprocess.Popen([ORDERTRACK, "--config", str(env.config_path), *args], stdout=log, stderr=log,
                                env=env_vars)
        started.append(proc)
        return proc

    start("generate", "generate", "--live", "--duration", "10m", "--orders-per-minute", "600",
          "--scan-interval-minutes", "0.3")
    start("producer", "produce", "--every", "2s")
    start("worker", "consume")
    try:
        def landed_scans() -> bool:
            spec = env.spec("uni_tracking_spath")
            try:
                return env.engine().query(f"SELECT COUNT(*) FROM {spec.mart_schema}.{spec.mart_table}")[0][0] > 50
            except Exception:  # the mart is created by the first landing
                return False

        wait_until("scan events in the mart", landed_scans, timeout=180)
        for table in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath"):
            r = env.cli("dq", "reconcile", "--table", table, "--json")
            assert r.returncode == 0, (table, r.stdout, r.stderr)
            out = json.loads(r.stdout)
            assert out["clean"] and out["until_from"] == "carried"
            spec = env.spec(table)
            with mariadb_admin.cursor() as cur:  # the workload is writing above the bound all along
                cur.execute(f"SELECT MAX(`{spec.cursor_column}`) FROM `{env.db}`.`{table}`")
                assert cur.fetchone()[0] >= out["until"]
                # ... and the bound is a recent one that really compared rows, not an early one
                cur.execute(f"SELECT COUNT(*) FROM `{env.db}`.`{table}` WHERE `{spec.cursor_column}` < %s",
                            (out["until"],))
                assert cur.fetchone()[0] > 0, out
            assert out["until"] > time.time() - 600, out
        assert all(p.poll() is None for p in started)  # nothing gave up meanwhile
    finally:
        for proc in started:
            stop(proc)


def test_reconcile_before_anything_landed_could_not_compare_exit_4(make_env):
    """Nothing landed (or nothing carried) is not bad input: the comparison could not run yet."""
    env = make_env()
    r = env.cli("dq", "reconcile", "--table", "ecs_order_info")
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("error:") == 1, r.stderr
