"""The long-running faust worker (`ordertrack consume`) against real Kafka and DuckDB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers.lag import measure_lag
from ordertrack.settings import load_settings
from ordertrack.watermarks.model import Watermark
from producers.runner import Producer, watermark_store
from tests.consumers.test_landing import publish_spath, raw_offsets
from tests.support.kafka_source import aborted_then_committed, db_now, insert

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_landed(env, table: str, expected: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        try:
            if raw_offsets(env, table)[0] >= expected:
                return
        except Exception:  # the raw table does not exist yet
            pass
        time.sleep(1)
    raise AssertionError(f"{table}: {raw_offsets(env, table)[0]} of {expected} rows landed within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_worker_killed_mid_landing_resumes_from_the_ledger(make_env, mariadb_admin):
    env = make_env()
    publish_spath(env, mariadb_admin, 40_000)
    worker = env.popen("consume", "--table", "uni_tracking_spath", "--batch-size", "2000")
    try:
        for line in worker.stderr:
            if '"landing.batch"' in line:
                break
        assert worker.poll() is None
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    partial = raw_offsets(env)[0]
    assert 0 < partial < 40_000
    worker = env.popen("consume", "--table", "uni_tracking_spath", "--batch-size", "2000")
    try:
        wait_landed(env, "uni_tracking_spath", 40_000, worker)
    finally:
        stop(worker)
    assert raw_offsets(env) == (40_000, 40_000, 0)
    lag = measure_lag(env.config, load_settings(), env.engine(), [env.spec("uni_tracking_spath")])
    assert all(p.lag_messages <= 1 for p in lag)  # only the last commit marker


def test_worker_reads_committed_only_and_from_the_ledger_not_the_group(make_env, mariadb_admin):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    aborted_then_committed(env.bootstrap, spec.topic, range(300), range(1000, 1300))
    # The group claims everything was processed (as faust does when it acks a failed batch):
    # the worker must still land it, because nothing is in the ledger.
    group = f"{env.config.pipeline.name}.landing"
    claimer = Consumer({"bootstrap.servers": env.bootstrap, "group.id": group, "enable.auto.commit": False})
    claimer.commit(offsets=[TopicPartition(spec.topic, p, 10_000) for p in range(3)], asynchronous=False)
    claimer.close()
    worker = env.popen("consume", "--table", "uni_tracking_spath", "--max-batch-age", "2s")  # no watermark here
    try:
        wait_landed(env, "uni_tracking_spath", 300, worker)
        time.sleep(2)  # anything aborted would have arrived by now too
    finally:
        stop(worker)
    ids = [r[0] for r in env.engine().query(f'SELECT order_id FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1')]
    assert ids == list(range(1000, 1300))


def test_a_column_added_in_the_source_while_the_worker_runs_arrives(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    spec = env.spec("ecs_order_info")
    cols = ("order_id", "order_sn", "partner_id", "user_id", "add_time")
    insert(mariadb_admin, f"`{env.db}`.ecs_order_info", cols, [(i, f"A{i}", 1, 1, now - 3000) for i in range(1, 21)])
    with Producer(env.config, load_settings(), [spec]) as producer:
        # A live window from a set watermark (a --start window is a backfill: it would not move it).
        watermark_store(env.config, load_settings()).write([Watermark(table="ecs_order_info", position=now - 3600, status="set")])
        producer.cycle(end=now - 2000)
        port = free_port()
        worker = env.popen("consume", "--table", "ecs_order_info", "--metrics-port", str(port))
        try:
            wait_landed(env, "ecs_order_info", 20, worker)
            with mariadb_admin.cursor() as cur:
                cur.execute(f"ALTER TABLE `{env.db}`.ecs_order_info ADD COLUMN delivery_priority TINYINT UNSIGNED NULL")
            insert(mariadb_admin, f"`{env.db}`.ecs_order_info", cols + ("delivery_priority",),
                   [(i, f"B{i}", 1, 1, now - 1500, 2) for i in range(21, 31)])
            producer.cycle(end=now - 1000)
            wait_landed(env, "ecs_order_info", 30, worker)
            assert worker.poll() is None  # no restart, no crash
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            assert 'ordertrack_rows_landed_total{table="ecs_order_info"} 30.0' in metrics
            assert "ordertrack_landing_batch_seconds_count" in metrics
        finally:
            stop(worker)
    rows = env.engine().query(f'SELECT order_id, delivery_priority FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1')
    assert rows[0] == (1, None) and rows[-1] == (30, 2) and len(rows) == 30


def test_two_workers_in_the_group_land_every_window_within_seconds(make_env, mariadb_admin):
    """A second worker joining and leaving: each window's tail lands without waiting for
    --max-batch-age (15 minutes by default), and no rebalance stalls landing."""
    from tests.consumers.test_landing import publish_spath
    from tests.support.kafka_source import consume_all

    env = make_env()
    topic = env.spec("uni_tracking_spath").topic
    first = env.popen("consume", "--table", "uni_tracking_spath")
    second = None
    try:
        publish_spath(env, mariadb_admin, 3_000)
        wait_landed(env, "uni_tracking_spath", 3_000, first, timeout=90)
        second = env.popen("consume", "--table", "uni_tracking_spath")
        publish_spath(env, mariadb_admin, 3_000, first=10_001)
        published = len(consume_all(env.bootstrap, topic))
        wait_landed(env, "uni_tracking_spath", published, first, timeout=90)
        assert second.poll() is None
        stop(second)
        publish_spath(env, mariadb_admin, 3_000, first=20_001)
        published = len(consume_all(env.bootstrap, topic))
        wait_landed(env, "uni_tracking_spath", published, first, timeout=90)
    finally:
        stop(first)
        if second is not None and second.poll() is None:
            stop(second)
    assert raw_offsets(env) == (published, published, 0)
