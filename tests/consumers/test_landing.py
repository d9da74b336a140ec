"""Landing exactly once, against real Kafka and a real DuckDB file."""

from __future__ import annotations

import json
import os
import signal

import orjson
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient

from consumers.drain import drain
from consumers.lander import Lander
from consumers.staging import RawMessage
from ordertrack.settings import load_settings
from ordertrack.watermarks.model import Watermark
from producers.backfill import publish_period
from producers.runner import Producer, watermark_store
from tests.support.kafka_source import aborted_then_committed, consume_all, db_now, insert
from tests.support.warehouses import ENGINES

pytestmark = pytest.mark.integration

SPATH = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def publish_spath(env, mariadb_admin, n: int, first: int = 1) -> tuple[int, int]:
    """`n` scan events (order ids from `first`) in one committed window; returns (start, end)."""
    now = db_now(mariadb_admin)
    start, end = now - 7200, now - 600
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           [(i, 1, start + (i % 6000), "ARRIVED_HUB", start) for i in range(first, first + n)])
    result = publish_period(env.config, load_settings(), env.spec("uni_tracking_spath"), start, end)
    assert result.status == "published", result.error
    return start, end


def raw_offsets(env, table: str = "uni_tracking_spath") -> tuple[int, int, int]:
    """(rows, distinct (partition, offset), rows landed twice) of a raw table."""
    spec = env.spec(table)
    return env.engine().query(
        f'SELECT COUNT(*), COUNT(DISTINCT (_kafka_partition, _kafka_offset)), '
        f'COUNT(*) - COUNT(DISTINCT (_kafka_partition, _kafka_offset)) FROM "{spec.raw_schema}"."{spec.raw_table}"'
    )[0]


def test_sigkill_mid_landing_then_restart_lands_every_offset_once(make_env, mariadb_admin):
    env = make_env()
    publish_spath(env, mariadb_admin, 60_000)
    proc = env.popen("consume", "--drain", "--table", "uni_tracking_spath", "--batch-size", "1500")
    for line in proc.stderr:  # one JSON event a line
        if '"landing.batch"' in line:
            break  # the first batch committed; the next ones are under way
    assert proc.poll() is None, "the worker finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    partial = raw_offsets(env)
    assert 0 < partial[0] < 60_000 and partial[2] == 0

    rerun = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert raw_offsets(env) == (60_000, 60_000, 0)
    landed = {r["table"]: r for r in json.loads(rerun.stdout)}["uni_tracking_spath"]
    assert landed["landed"] == 60_000 - partial[0]  # it resumed where the ledger said


def test_a_lost_kafka_commit_lands_nothing_twice(make_env, mariadb_admin):
    """The warehouse commit happened, the Kafka commit did not: the ledger still decides."""
    env = make_env()
    publish_spath(env, mariadb_admin, 5_000)
    settings = load_settings()
    specs = [env.spec("uni_tracking_spath")]
    drain(env.config, settings, env.engine(), specs)
    assert raw_offsets(env) == (5_000, 5_000, 0)
    # Rewind the group to the beginning, as if every offset commit had been lost.
    group = f"{env.config.pipeline.name}.landing"
    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    parts = [TopicPartition(specs[0].topic, p, 0) for p in range(env.config.kafka.partitions)]
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, parts)])[group].result(15)
    again = drain(env.config, settings, env.engine(), specs)
    assert again[0].landed == 0
    assert raw_offsets(env) == (5_000, 5_000, 0)


def test_redelivered_messages_are_skipped_by_the_ledger(make_env, mariadb_admin):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    lander = Lander(env.engine(), env.config, load_settings())
    lander.ensure_table(spec)
    msgs = [RawMessage(0, i, orjson.dumps({"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1}), "w") for i in range(100)]
    first = lander.land(spec, msgs)
    assert (first.landed, first.skipped) == (100, 0)
    # A redelivery overlapping what landed, plus 20 new ones, with duplicates inside the batch.
    more = [RawMessage(0, i, orjson.dumps({"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1}), "w") for i in range(80, 120)]
    second = lander.land(spec, more + more[-20:])
    # 20 new offsets land; 20 already landed and 20 repeated inside the batch are skipped.
    assert (second.landed, second.skipped) == (20, 40)
    rows = env.engine().query(
        f'SELECT COUNT(*), COUNT(DISTINCT _kafka_offset) FROM "{spec.raw_schema}"."{spec.raw_table}"'
    )[0]
    assert rows == (120, 120)


@pytest.mark.parametrize("warehouse", ENGINES)
def test_poison_messages_go_to_the_dead_letter_topic_and_the_rest_lands(make_env, mariadb_admin, warehouse):
    env = make_env(warehouse=warehouse)
    spec = env.spec("uni_tracking_spath")
    p = KafkaProducer({"bootstrap.servers": env.bootstrap})
    good = [orjson.dumps({"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1_800_000_000, "event_code": "X"}) for i in range(10)]
    bad = [b"not json at all", orjson.dumps({"id": 99, "traceSeq": 1, "pathTime": 1}), b"\xff\xfe\x00",
           orjson.dumps({"id": 98, "order_id": 98, "traceSeq": "first", "pathTime": 1})]
    for v in good[:5] + bad + good[5:]:
        p.produce(spec.topic, key=b"k", value=v, partition=0)
    p.flush(15)
    result = drain(env.config, load_settings(), env.engine(), [spec])[0]
    assert (result.landed, result.rejected) == (10, 4)
    assert raw_offsets(env)[0] == 10
    exceptions = env.engine().query(
        f'SELECT kafka_offset, exception_type, notes FROM "{env.config.target.mart_schema}".order_tracking_exceptions ORDER BY 1'
    )
    assert [(o, t) for o, t, _ in exceptions] == [(5, "dead_letter"), (6, "dead_letter"), (7, "dead_letter"), (8, "dead_letter")]
    notes = [n for _, _, n in exceptions]
    assert notes[0] == "value is not valid JSON"
    assert notes[1].startswith("key column(s) order_id, traceSeq missing")
    assert notes[2] == "value is not UTF-8 text"
    assert notes[3] == "the value of traceSeq does not convert to BIGINT without change"
    letters = [orjson.loads(m.value()) for m in consume_all(env.bootstrap, env.config.kafka.dead_letter_topic)]
    assert sorted(d["offset"] for d in letters if d["stage"] == "landing") == [5, 6, 7, 8]


def test_rows_of_an_aborted_producer_transaction_never_land(make_env, mariadb_admin):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    aborted_then_committed(env.bootstrap, spec.topic, range(50), range(1000, 1020))
    drain(env.config, load_settings(), env.engine(), [spec])
    ids = [r[0] for r in env.engine().query(f'SELECT order_id FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1')]
    assert ids == list(range(1000, 1020))


@pytest.mark.parametrize("warehouse", ENGINES)
def test_a_column_added_in_the_source_arrives_downstream(make_env, mariadb_admin, warehouse):
    env = make_env(warehouse=warehouse)
    now = db_now(mariadb_admin)
    cols = ("order_id", "order_sn", "partner_id", "user_id", "add_time")
    insert(mariadb_admin, f"`{env.db}`.ecs_order_info", cols, [(i, f"A{i}", 1, 1, now - 3000) for i in range(1, 11)])
    settings = load_settings()
    spec = env.spec("ecs_order_info")
    engine = env.engine()
    with Producer(env.config, settings, [spec]) as p:
        # A live window from a set watermark (a --start window is a backfill: it would not move it).
        watermark_store(env.config, settings).write([Watermark(table="ecs_order_info", position=now - 3600, status="set")])
        p.cycle(end=now - 2000)
        drain(env.config, settings, engine, [spec])
        with mariadb_admin.cursor() as cur:
            cur.execute(f"ALTER TABLE `{env.db}`.ecs_order_info ADD COLUMN delivery_priority TINYINT UNSIGNED NULL, "
                        "ADD COLUMN promise_note VARCHAR(40) NULL")
        insert(mariadb_admin, f"`{env.db}`.ecs_order_info", cols + ("delivery_priority", "promise_note"),
               [(i, f"B{i}", 1, 1, now - 1500, i % 3, "next day") for i in range(11, 16)])
        p.cycle(end=now - 1000)
        result = drain(env.config, settings, engine, [spec])[0]
    assert set(result.added_columns) == {"delivery_priority", "promise_note"}
    assert engine.raw_columns(spec)["delivery_priority"] == "INTEGER"
    rows = engine.query(f'SELECT order_id, delivery_priority, promise_note FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1')
    assert len(rows) == 15
    assert rows[0] == (1, None, None) and rows[-1] == (15, 0, "next day")


@pytest.mark.parametrize("warehouse", ENGINES)
def test_run_once_on_a_generated_workload_lands_what_each_window_holds(make_env, mariadb_admin, warehouse):
    env = make_env(warehouse=warehouse)
    env.generate(mariadb_admin, "--history-days", "0.1", "--orders-per-minute", "60", "--scan-interval-minutes", "15",
                 "--seed", "5")
    r = env.cli("run-once", "--json")
    assert r.returncode == 0, r.stderr
    report = {t["table"]: t for t in json.loads(r.stdout)["tables"]}
    for table, cursor in (("ecs_order_info", "add_time"), ("uni_tracking_info", "update_time"), ("uni_tracking_spath", "pathTime")):
        t = report[table]
        with mariadb_admin.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{env.db}`.{table} WHERE {cursor} >= %s AND {cursor} < %s",
                        (t["window_start"], t["window_end"]))
            in_window = cur.fetchone()[0]
        assert t["published"] == t["landed"] == t["raw_rows_total"] == in_window > 0, t
    for table, t in report.items():  # within the window, source and marts agree key by key (each engine's hash)
        r = env.cli("dq", "reconcile", "--table", table, "--since", str(t["window_start"]), "--until",
                    str(t["window_end"]), "--json")
        assert r.returncode == 0, (table, r.stdout[-2000:], r.stderr[-2000:])


def test_lag_counts_what_has_not_landed(make_env, mariadb_admin):
    env = make_env()
    publish_spath(env, mariadb_admin, 3_000)
    r = env.cli("lag", "--table", "uni_tracking_spath", "--json")
    assert r.returncode == 0, r.stderr
    before = json.loads(r.stdout)
    # Only the window's transaction wrote here: rows plus one commit marker a partition.
    assert sum(p["lag_messages"] for p in before) == 3_000 + len(before)
    assert all(p["lag_minutes"] >= 0 for p in before)
    assert env.cli("consume", "--drain").returncode == 0
    after = json.loads(env.cli("lag", "--table", "uni_tracking_spath", "--json").stdout)
    assert all(p["lag_messages"] <= 1 and p["lag_minutes"] == 0 for p in after)  # the commit marker
