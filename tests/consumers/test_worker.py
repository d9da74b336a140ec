"""The long-running faust worker (`ordertrack consume`) against real Kafka and DuckDB."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import Producer as KafkaProducer

from ordertrack.settings import load_settings
from consumers.lag import measure_lag
from tests.consumers.test_landing import publish_spath, raw_offsets

pytestmark = pytest.mark.integration


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
    row = lambda i: orjson.dumps({"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1_800_000_000})  # noqa: E731
    tp = KafkaProducer({"bootstrap.servers": env.bootstrap, "transactional.id": f"w-{uuid.uuid4().hex[:6]}"})
    tp.init_transactions(15)
    tp.begin_transaction()
    for i in range(300):
        tp.produce(spec.topic, value=row(i), partition=i % 3)
    tp.abort_transaction(15)
    tp.begin_transaction()
    for i in range(1000, 1300):
        tp.produce(spec.topic, value=row(i), partition=i % 3)
    tp.commit_transaction(15)
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
