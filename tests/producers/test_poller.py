"""The producer against real MariaDB and Kafka: exact windows, atomic windows, the safe end."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import orjson
import pymysql
import pytest

from ordertrack.settings import load_settings
from ordertrack.tables import TableRegistry
from producers.runner import Producer, watermark_store
from tests.producers.tuning import retune, set_watermark
from tests.support.kafka_source import consume_all, db_now, insert, wait_for_writes

pytestmark = pytest.mark.integration

SPATH = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def spath_rows(first_order: int, n: int, path_time: int) -> list[tuple]:
    return [(first_order + i, 1, path_time, "ARRIVED_HUB", path_time) for i in range(n)]


def keys_of(messages) -> list[tuple[int, int]]:
    out = []
    for m in messages:
        k = orjson.loads(m.key())
        out.append((k["order_id"], k["traceSeq"]))
    return out


def test_window_publishes_exactly_its_rows_across_same_second_pages(make_env, mariadb_admin):
    env = retune(make_env(batch_size=250), window={"max_window_span_minutes": 24 * 60})  # one window, not split
    now = db_now(mariadb_admin)
    t0, t1, end = now - 7200, now - 3600, now - 1800
    table = f"`{env.db}`.uni_tracking_spath"
    rows = (
        spath_rows(1, 300, t0 - 1)          # before the window
        + spath_rows(1000, 40, t0)           # on the start: inside (half-open)
        + spath_rows(2000, 3000, t1)         # 3,000 rows in one second, across 12 pages
        + spath_rows(6000, 700, t1 + 1)
        + spath_rows(8000, 500, end - 1)
        + spath_rows(9000, 200, end)         # on the end: next window
        + spath_rows(9500, 100, end + 60)
    )
    insert(mariadb_admin, table, SPATH, rows)
    expected = {(r[0], r[1]) for r in rows if t0 <= r[2] < end}
    assert len(expected) == 40 + 3000 + 700 + 500

    settings = load_settings()
    spec = [TableRegistry(env.config).get("uni_tracking_spath")]
    set_watermark(env, "uni_tracking_spath", t0)
    with Producer(env.config, settings, spec) as producer:
        first = producer.cycle(end=end)
        assert first.status == "success", first.tables[0].error
        published = keys_of(consume_all(env.bootstrap, env.topic("uni_tracking_spath")))
        assert Counter(published).most_common(1)[0][1] == 1  # no row twice
        assert set(published) == expected
        mark = watermark_store(env.config, settings).latest()["uni_tracking_spath"]
        assert (mark.position, mark.window_start, mark.row_count, mark.status) == (end, t0, len(expected), "committed")
        assert sum(mark.partition_end_offsets.values()) == len(expected)  # offsets of a fresh topic

        # Rows at or past `end` arrive in the next window, and nothing is published again.
        second = producer.cycle(end=end + 3600)
        assert second.tables[0].window_start == end
        published = keys_of(consume_all(env.bootstrap, env.topic("uni_tracking_spath")))
        assert Counter(published).most_common(1)[0][1] == 1
        assert set(published) == {(r[0], r[1]) for r in rows if t0 <= r[2] < end + 3600}


def test_rows_updated_while_the_window_is_read_arrive_once_per_version(make_env, mariadb_admin):
    env = make_env(batch_size=100, buffer_minutes=0)
    now = db_now(mariadb_admin)
    base = now - 3000
    cols = ("order_id", "tracking_number", "carrier_code", "state", "add_time", "update_time")
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_info", cols,
           [(i, f"TN{i}", "KS", 1, base, base + i) for i in range(1, 1001)])
    settings = load_settings()
    spec = TableRegistry(env.config).get("uni_tracking_info")
    producer = Producer(env.config, settings, [spec])
    updated = threading.Event()

    def update_unread_rows(page: int, rows_so_far: int) -> None:
        if page == 1 and not updated.is_set():
            # A separate session moves rows not read yet (ids 901..1000) to a new state, now.
            with pymysql.connect(unix_socket=mariadb_admin.unix_socket, user="root", autocommit=True) as c, c.cursor() as cur:
                cur.execute(f"UPDATE `{env.db}`.uni_tracking_info SET state = 4, update_time = UNIX_TIMESTAMP() "
                            "WHERE order_id > 900")
            updated.set()

    producer.pollers[0].on_page = update_unread_rows
    set_watermark(env, "uni_tracking_info", base)
    with producer:
        one = producer.cycle(end=now).tables[0]
        assert updated.is_set()
        first = [orjson.loads(m.value()) for m in consume_all(env.bootstrap, env.topic("uni_tracking_info"))]
        # The window is one snapshot: every row once, as it was when the window began.
        assert sorted(r["order_id"] for r in first) == list(range(1, 1001)), one
        assert {r["state"] for r in first} == {1}
        time.sleep(1.1)  # let the source clock pass the updates' cursor
        two = producer.cycle().tables[0]
        every = [orjson.loads(m.value()) for m in consume_all(env.bootstrap, env.topic("uni_tracking_info"))]
    newer = [r for r in every if r["state"] == 4]
    assert sorted(r["order_id"] for r in newer) == list(range(901, 1001)), (one, two, sorted(r["update_time"] for r in newer)[:3])
    assert len(every) == 1100, (one, two)


def test_open_transaction_holds_the_window_end(make_env, mariadb_admin):
    env = make_env(buffer_minutes=0)
    settings = load_settings()
    spec = TableRegistry(env.config).get("uni_tracking_spath")
    table = f"`{env.db}`.uni_tracking_spath"
    writer = pymysql.connect(unix_socket=mariadb_admin.unix_socket, user="root", autocommit=False)
    try:
        with writer.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute(f"INSERT INTO {table} (order_id, traceSeq, pathTime, event_code, add_time) "
                        "VALUES (42, 1, UNIX_TIMESTAMP(), 'PICKED_UP', UNIX_TIMESTAMP())")
        time.sleep(2.2)  # the source clock moves past the row's cursor while it is uncommitted
        set_watermark(env, "uni_tracking_spath", db_now(mariadb_admin) - 600)
        with Producer(env.config, settings, [spec]) as producer:
            held = producer.cycle().tables[0]
            assert held.status == "published"
            assert held.hold_reason == "open_transaction" and held.hold_seconds >= 2
            writer.commit()
            time.sleep(1.1)
            after = producer.cycle().tables[0]
            assert after.window_start == held.window_end
    finally:
        writer.close()
    published = keys_of(consume_all(env.bootstrap, env.topic("uni_tracking_spath")))
    assert published == [(42, 1)]  # arrived, and exactly once


def test_sigkill_between_pages_publishes_nothing_and_the_rerun_publishes_once(make_env, mariadb_admin):
    env = retune(make_env(batch_size=100), window={"max_window_span_minutes": 24 * 60})  # one window, not split
    now = db_now(mariadb_admin)
    start, end = now - 7200, now - 600
    rows = [(i, 1, start + (i % 6000), "ARRIVED_HUB", start) for i in range(1, 120_001)]
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH, rows)
    set_watermark(env, "uni_tracking_spath", start)
    window = ("--table", "uni_tracking_spath", "--once", "--end-time", str(end))
    topic = env.topic("uni_tracking_spath")

    proc = env.popen("produce", *window)
    # The window's transaction is under way once anything is written to the topic.
    assert wait_for_writes(env.bootstrap, topic, proc), "the producer finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    assert len(consume_all(env.bootstrap, topic, "read_uncommitted")) > 0  # rows were written...
    assert consume_all(env.bootstrap, topic) == []                           # ...but none is visible
    assert watermark_store(env.config, load_settings()).latest()["uni_tracking_spath"].position == start

    rerun = env.cli("produce", *window, "--json-output", str(env.config_path.with_suffix(".json")))
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(env.config_path.with_suffix(".json").read_text())
    assert report["status"] == "success" and report["tables"]["uni_tracking_spath"]["rows"] == 120_000
    published = keys_of(consume_all(env.bootstrap, topic, timeout=60))
    assert len(published) == 120_000 and len(set(published)) == 120_000
    assert watermark_store(env.config, load_settings()).latest()["uni_tracking_spath"].position == end


def test_sigterm_aborts_the_open_window(make_env, mariadb_admin):
    env = make_env(batch_size=100)
    now = db_now(mariadb_admin)
    rows = [(i, 1, now - 5000 + (i % 3000), "ARRIVED_HUB", now) for i in range(1, 80_001)]
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH, rows)
    topic = env.topic("uni_tracking_spath")
    proc = env.popen("backfill", "--table", "uni_tracking_spath", "--from", str(now - 6000), "--to", str(now - 600))
    assert wait_for_writes(env.bootstrap, topic, proc), "the producer finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "aborted" in err or "stopped" in err
    assert consume_all(env.bootstrap, topic) == []
