"""Landing under faults, against real Kafka, MariaDB and DuckDB: nothing lost, nothing stuck."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import orjson
import pytest
from confluent_kafka import Producer as KafkaProducer
from structlog.testing import capture_logs

from consumers.lander import DEAD_LETTER_VALUE_CHARS, Lander
from consumers.staging import RawMessage
from marts.runner import MartRunner
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.settings import KafkaSettings, load_settings
from ordertrack.tables import TableRegistry
from tests.consumers.test_landing import publish_spath, raw_offsets
from tests.consumers.test_worker import stop, wait_landed
from tests.support.kafka_source import consume_all
from tests.support.stderr import Stderr

pytestmark = pytest.mark.integration


def hold_file(path) -> subprocess.Popen:
    """Another process holding the DuckDB file (DuckDB allows one writing process) until stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(30)


def spath_message(i: int, **extra) -> bytes:
    return orjson.dumps({"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1_800_000_000, "event_code": "X", **extra})


def test_a_batch_the_warehouse_refuses_is_kept_and_lands_when_it_is_back(make_env, mariadb_admin):
    env = make_env()
    publish_spath(env, mariadb_admin, 2_000)
    worker = env.popen("consume", "--table", "uni_tracking_spath")
    try:
        log = Stderr(worker.stderr)
        wait_landed(env, "uni_tracking_spath", 2_000, worker)
        holder = hold_file(env.warehouse)
        try:
            publish_spath(env, mariadb_admin, 3_000, first=10_001)  # they arrive while the file is held
            # A landing failed after the engine's own lock budget (2s here): before the fix the
            # worker dropped that batch and the ledger moved past it with the next one.
            log.wait_for('"outage.started"', timeout=120)
            assert worker.poll() is None
        finally:
            release(holder)
        published = len(consume_all(env.bootstrap, env.spec("uni_tracking_spath").topic))
        assert published >= 5_000  # the second window holds the first one's rows again, too
        wait_landed(env, "uni_tracking_spath", published, worker, timeout=120)
        log.wait_for('"outage.ended"', timeout=30)
        assert log.count('"outage.started"') == 1  # said once, not once per attempt
    finally:
        stop(worker)
    assert raw_offsets(env) == (published, published, 0)


@pytest.fixture(autouse=True)
def _short_lock_budget(monkeypatch):
    # Children inherit it: the engine gives up on a held file after 2s (instead of a minute), so
    # a short hold already exercises the worker's own retry, as a long outage would.
    monkeypatch.setenv("ORDERTRACK_DUCKDB_LOCK_WAIT_SECONDS", "2")


def test_a_key_that_cannot_be_a_column_is_dead_lettered_and_the_rest_lands(make_env, mariadb_admin):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    p = KafkaProducer({"bootstrap.servers": env.bootstrap})
    values = [spath_message(1), spath_message(2, **{"bad-key": 1}), spath_message(3), spath_message(4, **{"a;b": "x"}),
              spath_message(5, new_column=7), spath_message(6)]
    for v in values:
        p.produce(spec.topic, key=b"k", value=v, partition=0)
    assert p.flush(15) == 0
    r = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)[0]
    assert (result["landed"], result["rejected"]) == (4, 2)
    rows = env.engine().query(f'SELECT order_id, new_column FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1')
    assert rows == [(1, None), (3, None), (5, "7"), (6, None)]
    exceptions = env.engine().query(
        f'SELECT kafka_offset, notes FROM "{env.config.target.mart_schema}".order_tracking_exceptions ORDER BY 1')
    assert [o for o, _ in exceptions] == [1, 3]
    assert "'bad-key'" in exceptions[0][1] and "'a;b'" in exceptions[1][1]
    letters = [orjson.loads(m.value()) for m in consume_all(env.bootstrap, env.config.kafka.dead_letter_topic)]
    assert sorted(d["offset"] for d in letters) == [1, 3]
    # Landing the same offsets again changes nothing (the poison message does not block later runs).
    again = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)[0]["messages"] == 0


def test_a_message_as_large_as_the_topic_allows_still_reaches_the_dead_letters(make_env, mariadb_admin):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    big = orjson.dumps({"id": 1, "traceSeq": 1, "pathTime": 1, "event_desc": "\"" * 450_000})  # no order_id; ~900 KB escaped
    p = KafkaProducer({"bootstrap.servers": env.bootstrap})
    p.produce(spec.topic, key=b"k", value=big, partition=0)
    p.produce(spec.topic, key=b"k", value=spath_message(2), partition=0)
    assert p.flush(15) == 0
    r = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json")
    assert r.returncode == 0, r.stderr
    assert (json.loads(r.stdout)[0]["landed"], json.loads(r.stdout)[0]["rejected"]) == (1, 1)
    [letter] = [orjson.loads(m.value()) for m in consume_all(env.bootstrap, env.config.kafka.dead_letter_topic)]
    assert letter["offset"] == 0 and letter["value_truncated"] is True
    assert letter["value_bytes"] == len(big) and len(letter["value"]) == DEAD_LETTER_VALUE_CHARS
    exceptions = env.engine().query(
        f'SELECT kafka_offset FROM "{env.config.target.mart_schema}".order_tracking_exceptions')
    assert exceptions == [(0,)]


def test_the_first_landings_of_every_table_at_once_all_merge(make_env, mariadb_admin):
    """Three tables landing their first batch into a fresh warehouse at the same moment (as the
    worker does) race to create schemas and marts; every batch must land and merge."""
    settings = load_settings()
    rows = {
        "ecs_order_info": lambda i: {"order_id": i, "order_sn": f"S{i}", "partner_id": 1, "user_id": 1, "add_time": 1_800_000_000},
        "uni_tracking_info": lambda i: {"order_id": i, "tracking_number": f"T{i}", "carrier_code": "c", "add_time": 1_800_000_000,
                                        "update_time": 1_800_000_000},
        "uni_tracking_spath": lambda i: {"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1_800_000_000, "event_code": "X",
                                         "add_time": 1_800_000_000},
    }
    for attempt in range(4):  # fresh warehouses: the race is on the first landing only
        env = make_env()
        engine = env.engine()
        lander = Lander(engine, env.config, settings, MartRunner(TableRegistry(env.config), engine.dialect).after_landing)
        start = threading.Barrier(3)
        errors: list[BaseException] = []

        def land(table: str) -> None:
            spec = env.spec(table)
            try:
                lander.ensure_table(spec)
                start.wait(10)
                lander.land(spec, [RawMessage(0, i, orjson.dumps(rows[table](i)), "w") for i in range(200)])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=land, args=(t,)) for t in rows]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        ledger = engine.query(f'SELECT topic, merged_at IS NOT NULL FROM "{engine.raw_schema}".ordertrack_ingest_ledger')
        assert sorted(ledger) == sorted((env.spec(t).topic, True) for t in rows), f"attempt {attempt}: {ledger}"
        for table in rows:
            spec = env.spec(table)
            assert engine.query(f'SELECT COUNT(*) FROM "{spec.mart_schema}"."{spec.mart_table}"')[0][0] == 200


def test_drain_and_run_once_beside_a_running_worker(make_env, mariadb_admin):
    env = make_env()
    publish_spath(env, mariadb_admin, 1_000)
    worker = env.popen("consume", "--table", "uni_tracking_spath")
    try:
        wait_landed(env, "uni_tracking_spath", 1_000, worker)
        publish_spath(env, mariadb_admin, 4_000, first=10_001)
        r = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--batch-size", "500")
        assert r.returncode == 0, r.stderr
        once = env.cli("run-once")
        assert once.returncode in (0, 1), once.stderr  # 1: a window failed, reported in the table
        assert "internal error" not in once.stderr
        published = len(consume_all(env.bootstrap, env.spec("uni_tracking_spath").topic))
        wait_landed(env, "uni_tracking_spath", published, worker)
        assert worker.poll() is None
    finally:
        stop(worker)
    assert raw_offsets(env) == (published, published, 0)


def test_a_recreated_topic_stops_landing_with_one_sentence_until_its_ledger_is_reset(make_env, mariadb_admin):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    publish_spath(env, mariadb_admin, 3_000)
    assert env.cli("consume", "--drain", "--table", "uni_tracking_spath").returncode == 0
    admin = KafkaAdmin(KafkaSettings(bootstrap_servers=env.bootstrap))
    admin.delete_topics([spec.topic])
    deadline = time.monotonic() + 60
    while True:  # topic deletion completes asynchronously
        try:
            admin.ensure_topics([t for t in pipeline_topics(env.config) if t.name == spec.topic])
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    p = KafkaProducer({"bootstrap.servers": env.bootstrap})
    for i in range(10):
        p.produce(spec.topic, key=b"k", value=spath_message(10_000 + i), partition=0)
    assert p.flush(15) == 0
    for args in (("consume", "--drain", "--table", "uni_tracking_spath"), ("lag", "--table", "uni_tracking_spath")):
        r = env.cli(*args)
        assert r.returncode == 4, (args, r.stdout, r.stderr)
        assert "ledger reset --table uni_tracking_spath" in r.stderr and "Traceback" not in r.stderr
    worker = env.popen("consume", "--table", "uni_tracking_spath")
    try:
        assert worker.wait(120) == 4
        assert "ledger reset --table uni_tracking_spath" in worker.stderr.read()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert env.cli("ledger", "reset", "--table", "uni_tracking_spath", "--yes").returncode == 0
    r = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["landed"] == 10


def test_one_shot_commands_meeting_a_missing_service_exit_4_with_one_sentence(make_env):
    env = make_env()
    for args, var in ((("lag",), {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}),
                      (("consume", "--drain"), {"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": "1", "MYSQL_UNIX_SOCKET": ""})):
        r = env.cli(*args, timeout=120, **var)
        assert r.returncode == 4, (args, r.stderr)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr
        assert len([line for line in r.stderr.splitlines() if line.startswith("error:")]) == 1


def test_columns_added_while_a_batch_was_staged_are_not_taken_for_poison_keys(make_env, monkeypatch):
    """The worker widens its raw tables at start-up while the first batch may already be landing:
    keys seen as unknown a moment ago that now exist are ordinary columns (found by the harness:
    a whole batch was dead-lettered as 'case variants' of the columns just added)."""
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    engine = env.engine()
    lander = Lander(engine, env.config, load_settings())
    lander.ensure_table(spec)
    real, calls = engine.raw_columns, []

    def as_if_empty(s):  # the first read, before the worker's start-up widened the table
        calls.append(s)
        return {} if len(calls) == 1 else real(s)

    monkeypatch.setattr(engine, "raw_columns", as_if_empty)
    result = lander.land(spec, [RawMessage(0, i, spath_message(i), "w") for i in range(5)])
    assert (result.landed, len(result.rejected)) == (5, 0)


def test_a_key_the_source_catalog_does_not_know_lands_as_text(make_env):
    """Say a column was dropped in the source after its rows were published: its key is kept, as text."""
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    engine = env.engine()
    lander = Lander(engine, env.config, load_settings())
    lander.ensure_table(spec)
    with capture_logs() as logs:
        result = lander.land(spec, [RawMessage(0, i, spath_message(i, legacy_note=f"n{i}"), "w") for i in range(3)])
    assert (result.landed, result.added_columns) == (3, ["legacy_note"])
    assert [e["columns"] for e in logs if e["event"] == "landing.columns.not_in_source"] == [["legacy_note"]]
    assert engine.query(f'SELECT legacy_note FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1') == [
        ("n0",), ("n1",), ("n2",)]


def test_batches_that_landed_unmerged_are_merged_by_the_sidecar_job(make_env):
    from marts.runner import merge_unmerged

    env = make_env()
    spec = env.spec("uni_tracking_spath")
    engine = env.engine()
    plain = Lander(engine, env.config, load_settings())  # no merge hook: as after a failed merge
    plain.ensure_table(spec)
    plain.land(spec, [RawMessage(0, i, spath_message(i), "w") for i in range(7)])
    assert len(engine.unmerged_batches(spec.topic)) == 1
    assert merge_unmerged(engine, TableRegistry(env.config))["uni_tracking_spath"] == 1
    assert engine.unmerged_batches(spec.topic) == []
    assert engine.query(f'SELECT COUNT(*) FROM "{spec.mart_schema}"."{spec.mart_table}"')[0][0] == 7


def test_a_poison_key_as_long_as_the_message_still_reaches_the_dead_letters(make_env):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    p = KafkaProducer({"bootstrap.servers": env.bootstrap})
    p.produce(spec.topic, key=b"k", value=spath_message(1, **{"a-" * 300_000: 1}), partition=0)
    p.produce(spec.topic, key=b"k", value=spath_message(2), partition=0)
    assert p.flush(15) == 0
    r = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (json.loads(r.stdout)[0]["landed"], json.loads(r.stdout)[0]["rejected"]) == (1, 1)
    [letter] = [orjson.loads(m.value()) for m in consume_all(env.bootstrap, env.config.kafka.dead_letter_topic)]
    assert letter["offset"] == 0 and "600000 characters" in letter["reason"] and len(letter["reason"]) < 1000


def test_a_backlog_ending_on_a_full_fetch_chunk_lands_without_waiting_for_the_batch_age(make_env, mariadb_admin):
    """10,000 rows fill the worker's fetch chunk exactly: nothing says 'caught up' but the quiet that follows."""
    env = make_env()
    publish_spath(env, mariadb_admin, 10_000)
    worker = env.popen("consume", "--table", "uni_tracking_spath")  # --max-batch-age stays 15 minutes
    try:
        wait_landed(env, "uni_tracking_spath", 10_000, worker, timeout=120)
    finally:
        stop(worker)
    assert raw_offsets(env) == (10_000, 10_000, 0)


def test_ledger_reset_refuses_while_batches_of_the_table_are_unmerged(make_env):
    env = make_env()
    spec = env.spec("uni_tracking_spath")
    plain = Lander(env.engine(), env.config, load_settings())  # lands without the merge hook
    plain.ensure_table(spec)
    plain.land(spec, [RawMessage(0, i, spath_message(i), "w") for i in range(3)])
    r = env.cli("ledger", "reset", "--table", "uni_tracking_spath", "--yes")
    assert r.returncode == 2 and "marts run" in r.stderr, r.stderr
    assert env.cli("marts", "run").returncode == 0
    assert env.cli("ledger", "reset", "--table", "uni_tracking_spath", "--yes").returncode == 0
