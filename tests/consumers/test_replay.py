"""`ordertrack replay`: re-land a period from Kafka into a warehouse that lost it, exactly once, with
or without a running worker; a fresh warehouse fills itself from the earliest retained offset."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from datetime import timezone

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from ordertrack.timeparse import format_utc
from tests.consumers.test_worker import stop
from tests.support.stderr import Stderr
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

TABLES = ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath")


def workload(env, mariadb_admin) -> None:
    """An hour of the three tables (inside the first window's 120-minute lookback), published and
    landed by `run-once`."""
    env.generate(mariadb_admin, "--history-days", "0.05", "--orders-per-minute", "60", "--scan-interval-minutes", "15",
                 "--seed", "7")
    r = env.cli("run-once", "--json")
    assert r.returncode == 0, r.stderr


def raw_rows(env, table: str, engine=None) -> list[tuple]:
    """(partition, offset) of every raw row, sorted; repeats kept."""
    spec = env.spec(table)
    return (engine or env.engine()).query(
        f'SELECT _kafka_partition, _kafka_offset FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1, 2')


def batch_of_offset(env, table: str) -> dict[tuple[int, int], str]:
    """(partition, offset) -> the batch that landed the raw row."""
    spec = env.spec(table)
    return {(p, o): b for p, o, b in env.engine().query(
        f'SELECT _kafka_partition, _kafka_offset, _batch_id FROM "{spec.raw_schema}"."{spec.raw_table}"')}


def mart(env, table: str, engine=None) -> list[tuple]:
    spec = env.spec(table)
    return (engine or env.engine()).query(f'SELECT * EXCLUDE (_ingested_at, _batch_id) FROM "{spec.mart_schema}"."{spec.mart_table}" '
                                          f"ORDER BY ALL")


def reconciles(env, **extra: str) -> None:
    for t in TABLES:
        r = env.cli("dq", "reconcile", "--table", t, "--json", **extra)
        assert r.returncode == 0, (t, r.stdout[-2000:], r.stderr[-2000:])


def replay(env, *args: str) -> dict:
    r = env.cli("replay", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_replay_restores_an_emptied_raw_table_and_a_second_changes_nothing(make_env, mariadb_admin):
    env = make_env()
    workload(env, mariadb_admin)
    table = "uni_tracking_spath"
    spec = env.spec(table)
    raw_before, mart_before = raw_rows(env, table), mart(env, table)
    assert raw_before and len(set(raw_before)) == len(raw_before)
    env.engine().query(f'DELETE FROM "{spec.raw_schema}"."{spec.raw_table}"')

    # The dry run: the offsets and counts, and nothing changes.
    dry = replay(env, "--table", table, "--from", "2000-01-01 00:00:00", "--dry-run")
    assert dry["dry_run"] is True and dry["raw_rows"] == 0
    assert dry["messages"] >= len(raw_before)  # offsets: rows plus one commit marker per transaction
    assert all(p["from_offset"] == 0 and p["before_retention"] is False for p in dry["partitions"])
    assert raw_rows(env, table) == [] and env.engine().query(
        'SELECT COUNT(*) FROM "settlement_public"."ordertrack_replays"')[0][0] == 0

    done = replay(env, "--table", table, "--from", "2000-01-01 00:00:00")
    assert done["raw_rows"] == 0 and done["holes"]
    lag = json.loads(env.cli("lag", "--table", table, "--json").stdout)
    assert sum(p["lag_messages"] for p in lag) >= len(raw_before)  # the hole is landing's work again
    status = env.cli("status", "--json", "--table", table)
    assert status.returncode in (0, 1), status.stderr  # 1 only if the lag breaches the configured limits
    running = [t for t in json.loads(status.stdout)["tables"] if t["table"] == table][0]["running"]
    assert [r["kind"] for r in running] == ["replay"] and done["replay_id"] in running[0]["detail"]
    drained = env.cli("consume", "--drain", "--table", table, "--json")
    assert drained.returncode == 0, drained.stderr
    assert raw_rows(env, table) == raw_before and mart(env, table) == mart_before
    reconciles(env)
    assert env.engine().query('SELECT COUNT(*) FROM "settlement_public"."ordertrack_replays" '
                              "WHERE finished_at IS NULL")[0][0] == 0

    # The same replay again: the rows are removed and landed again, each offset once.
    again = replay(env, "--table", table, "--from", "2000-01-01 00:00:00")
    assert again["raw_rows"] == len(raw_before)
    assert env.cli("consume", "--drain", "--table", table).returncode == 0
    assert raw_rows(env, table) == raw_before and mart(env, table) == mart_before
    reconciles(env)


def test_a_replay_up_to_a_time_re_lands_only_that_period(make_env, mariadb_admin):
    env = make_env()
    workload(env, mariadb_admin)
    table = "ecs_order_info"
    spec = env.spec(table)
    engine = env.engine()
    raw_before = raw_rows(env, table)
    # A second period of messages, written a whole second after the first had landed: a backfill
    # of the same rows. `--to` is that second.
    landed = engine.query(f'SELECT MAX(_ingested_at) FROM "{spec.raw_schema}"."{spec.raw_table}"')[0][0]
    split = math.ceil(landed.replace(tzinfo=timezone.utc).timestamp()) + 1
    wait_until("the clock to pass the split second", lambda: time.time() >= split, timeout=5)
    with mariadb_admin.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP()")
        now = cur.fetchone()[0]
    r = env.cli("backfill", "--table", table, "--from", str(now - 10_800), "--to", str(now - 300))
    assert r.returncode == 0, r.stderr
    assert env.cli("consume", "--drain", "--table", table).returncode == 0
    second = [r for r in raw_rows(env, table) if r not in set(raw_before)]
    assert len(second) == len(raw_before)
    ingested = batch_of_offset(env, table)
    to = format_utc(split)
    plan = replay(env, "--table", table, "--from", "2000-01-01 00:00:00", "--to", to)
    assert plan["raw_rows"] == len(raw_before)
    assert env.cli("consume", "--drain", "--table", table).returncode == 0
    after = batch_of_offset(env, table)
    assert sorted(after) == sorted(ingested)  # each offset once
    assert all(after[k] == ingested[k] for k in second)  # after the period: untouched
    assert all(after[k] != ingested[k] for k in raw_before)  # in it: landed again
    reconciles(env)


def test_a_replay_while_the_worker_runs_restarts_it_at_the_new_position(make_env, mariadb_admin):
    env = make_env()
    workload(env, mariadb_admin)
    table = "uni_tracking_info"
    spec = env.spec(table)
    raw_before, mart_before = raw_rows(env, table), mart(env, table)
    worker = env.popen("consume", "--table", table)
    log = Stderr(worker.stderr)
    try:
        log.wait_for("worker.seek_to_ledger", timeout=90)
        env.engine().query(f'DELETE FROM "{spec.raw_schema}"."{spec.raw_table}" WHERE _kafka_partition = 0')
        # The warehouse file is shared: the replay waits its turn for the file, like any command.
        replay(env, "--table", table, "--from-offset", "0:0")
        log.wait_for("worker.restarting", timeout=120)
        wait_until("the replayed partition to land again", lambda: raw_rows(env, table) == raw_before, timeout=120)
        assert worker.poll() is None  # the same process (same pid), started over by exec
    finally:
        stop(worker)
    assert mart(env, table) == mart_before
    reconciles(env)


def test_a_fresh_warehouse_fills_itself_from_the_earliest_offset(make_env, mariadb_admin, tmp_path):
    """The way to move to another warehouse: point WAREHOUSE_URL at it and land."""
    env = make_env()
    workload(env, mariadb_admin)
    fresh = tmp_path / "moved.duckdb"
    r = env.cli("consume", "--drain", "--json", WAREHOUSE_URL=f"duckdb:///{fresh}")
    assert r.returncode == 0, r.stderr
    from ordertrack.warehouse.duckdb_engine import DuckDBEngine

    moved = DuckDBEngine(fresh, env.config.target.raw_schema, env.config.target.mart_schema)
    for t in TABLES:
        assert raw_rows(env, t, moved) == raw_rows(env, t)
        assert mart(env, t, moved) == mart(env, t)
    reconciles(env, WAREHOUSE_URL=f"duckdb:///{fresh}")


def test_a_period_past_retention_is_reported_and_what_is_older_is_kept(make_env, mariadb_admin):
    env = make_env()
    workload(env, mariadb_admin)
    table = "uni_tracking_spath"
    spec = env.spec(table)
    rows = raw_rows(env, table)
    p0 = sorted(o for p, o in rows if p == 0)
    cut = p0[len(p0) // 2]  # Kafka forgets the first half of partition 0, as retention would
    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    for f in admin.delete_records([TopicPartition(spec.topic, 0, cut)]).values():
        f.result(timeout=30)
    dry = replay(env, "--table", table, "--from", "2000-01-01 00:00:00", "--dry-run")
    p = next(x for x in dry["partitions"] if x["partition"] == 0)
    assert p["before_retention"] is True and p["log_start"] == cut == p["from_offset"]
    assert any(re.search(r"partition 0: the period starts before", n) for n in dry["notes"])
    replay(env, "--table", table, "--from", "2000-01-01 00:00:00")
    assert env.cli("consume", "--drain", "--table", table).returncode == 0
    assert raw_rows(env, table) == rows  # rows Kafka no longer holds were not removed


def test_a_ledger_reset_closes_the_topics_open_holes(make_env, mariadb_admin):
    """A hole counts offsets of the topic's earlier life: after `ledger reset` (the topic was
    recreated) it must not move landing past offsets that never landed."""
    env = make_env()
    workload(env, mariadb_admin)
    table = "uni_tracking_spath"
    replay(env, "--table", table, "--from-offset", "0:0")
    open_holes = 'SELECT COUNT(*) FROM "settlement_public"."ordertrack_replays" WHERE finished_at IS NULL'
    assert env.engine().query(open_holes)[0][0] == 1
    r = env.cli("ledger", "reset", "--table", table, "--yes")
    assert r.returncode == 0, r.stderr
    assert env.engine().query(open_holes)[0][0] == 0
    assert env.engine().next_offsets(env.topic(table)) == {}  # from the earliest offset again


def test_a_replay_while_the_worker_is_landing_a_backlog_is_found_inside_a_landing(make_env, mariadb_admin):
    """The worker is busy (a 40,000-row backlog in 2,000-message batches) when the replay commits:
    its next landing finds the position moved back, commits nothing, and the worker restarts."""
    from tests.consumers.test_landing import publish_spath, raw_offsets

    env = make_env()
    publish_spath(env, mariadb_admin, 40_000)
    table = "uni_tracking_spath"
    worker = env.popen("consume", "--table", table, "--batch-size", "2000", stdout=subprocess.DEVNULL)
    log = Stderr(worker.stderr)
    try:
        log.wait_for('"landing.batch"', timeout=120)
        replay(env, "--table", table, "--from-offset", "0:0", "--from-offset", "1:0", "--from-offset", "2:0")
        log.wait_for("worker.restarting", timeout=120)
        # Raw keeps its rows until they are re-landed, so a complete raw table proves nothing by
        # itself: the holes must be closed too (every offset of the period landed again).
        open_holes = 'SELECT COUNT(*) FROM "settlement_public"."ordertrack_replays" WHERE finished_at IS NULL'
        wait_until("the period re-landed and every offset in raw once",
                   lambda: env.engine().query(open_holes)[0][0] == 0 and raw_offsets(env, table) == (40_000, 40_000, 0),
                   timeout=240, context=lambda: "".join(log.lines[-10:]))
        assert worker.poll() is None  # the same process (same pid), started over by exec
    finally:
        stop(worker)
