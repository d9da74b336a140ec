"""A window larger than `max_window_rows` / `max_window_span_minutes` is published as consecutive
sub-windows, each its own Kafka transaction with its own watermark, on the real services."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter, defaultdict

import orjson
import pymysql
import pytest

from ordertrack.settings import load_settings
from producers.reader import WindowReader
from producers.runner import watermark_store
from tests.producers.tuning import live_position, retune, set_watermark
from tests.support.kafka_source import consume_all, db_now, high_watermarks, insert

pytestmark = pytest.mark.integration

SPATH = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def header(m, name: str) -> str:
    return dict(m.headers())[name].decode()


def test_sub_window_ends_keep_each_cursor_second_whole(make_env, mariadb_admin):
    env = make_env()
    t = db_now(mariadb_admin) - 86400
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           [(i, 1, t, "A", t) for i in range(1, 11)]                      # 10 rows at t
           + [(i, 1, t + 1, "A", t) for i in range(11, 5011)]             # 5,000 rows in one second
           + [(i, 1, t + 2, "A", t) for i in range(5011, 5111)]           # 100 at t+2
           + [(i, 1, t + 7200, "A", t) for i in range(5111, 5121)])       # 10 two hours later
    reader = WindowReader(pymysql.connect(unix_socket=mariadb_admin.unix_socket, user="root"),
                          env.spec("uni_tracking_spath"), 500)
    end = t + 86400
    assert reader.sub_window_end(t, end, 100, 3600) == t + 1          # stops before the big second
    assert reader.sub_window_end(t + 1, end, 100, 3600) == t + 2      # which goes whole, past the limit
    assert reader.sub_window_end(t + 2, end, 100, 3600) == t + 3600 + 2  # span counts from the first row
    assert reader.sub_window_end(t + 3602, end, 100, 3600) == t + 7200 + 3600  # an empty stretch costs nothing
    assert reader.sub_window_end(t + 7201, end, 100, 3600) == end     # nothing left: the rest in one
    assert reader.sub_window_end(t, end, 10_000, 3600) == t + 3600    # the span limit alone
    assert reader.sub_window_end(t, t + 2, 10_000, 3600) == t + 2     # never past the window's end


def test_a_long_catch_up_commits_sub_windows_and_every_row_arrives_once(make_env, mariadb_admin):
    env = retune(make_env(batch_size=1000), window={"max_window_rows": 4000, "max_window_span_minutes": 60},
                 kafka={"transaction_timeout_seconds": 10})
    now = db_now(mariadb_admin)
    start, end = now - 3 * 3600, now - 600
    burst = start + 2000
    rows = ([(i, 1, start + i % 4700, "A", start) for i in range(1, 94_001)]
            + [(i, 1, burst, "BURST", start) for i in range(94_001, 100_001)]     # 6,020 rows share one second
            + [(i, 1, start + 9000, "LATE", start) for i in range(100_001, 100_011)])
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH, rows)
    set_watermark(env, "uni_tracking_spath", start)

    r = env.cli("produce", "--once", "--table", "uni_tracking_spath", "--end-time", str(end))
    assert r.returncode == 0, r.stderr
    assert live_position(env, "uni_tracking_spath") == end

    marks = [m for m in watermark_store(env.config, load_settings()).history(now - 86400) if m.status == "committed"]
    assert len(marks) >= 20
    assert [m.window_start for m in marks] == [start] + [m.position for m in marks[:-1]]  # consecutive
    assert marks[-1].position == end and sum(m.row_count for m in marks) == len(rows)
    big = [m for m in marks if m.row_count > 4000]
    assert len(big) == 1 and big[0].window_start <= burst < big[0].position  # the one second over the limit

    messages = consume_all(env.bootstrap, env.topic("uni_tracking_spath"), timeout=120)
    counts = Counter(orjson.loads(m.key())["order_id"] for m in messages)
    assert len(counts) == len(rows) and max(counts.values()) == 1
    windows_of_second: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        windows_of_second[header(m, "cursor")].add(header(m, "window_id"))
    assert max(len(w) for w in windows_of_second.values()) == 1  # no cursor second split between sub-windows
    assert {header(m, "window_id") for m in messages} == {m.window_id for m in marks if m.row_count}


def test_sigkill_between_sub_windows_keeps_the_committed_ones_and_the_rerun_resumes(make_env, mariadb_admin):
    env = retune(make_env(batch_size=100), window={"max_window_rows": 3000}, kafka={"transaction_timeout_seconds": 10})
    now = db_now(mariadb_admin)
    start, end = now - 7200, now - 600
    rows = [(i, 1, start + i % 6000, "A", start) for i in range(1, 120_001)]
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH, rows)
    set_watermark(env, "uni_tracking_spath", start)
    window = ("--once", "--table", "uni_tracking_spath", "--end-time", str(end))
    topic = env.topic("uni_tracking_spath")

    proc = env.popen("produce", *window)
    # The `set` record, then two sub-windows' records and their commit markers.
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if sum(high_watermarks(env.bootstrap, env.config.kafka.watermark_topic).values()) >= 5:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the producer finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    position = live_position(env, "uni_tracking_spath")
    assert start < position < end  # the committed sub-windows count; the open one does not
    visible = Counter(orjson.loads(m.key())["order_id"] for m in consume_all(env.bootstrap, topic, timeout=60))
    assert set(visible) == {r[0] for r in rows if r[2] < position} and max(visible.values()) == 1

    rerun = env.cli("produce", *window)
    assert rerun.returncode == 0, rerun.stderr
    assert live_position(env, "uni_tracking_spath") == end
    every = Counter(orjson.loads(m.key())["order_id"] for m in consume_all(env.bootstrap, topic, timeout=120))
    assert len(every) == len(rows) and max(every.values()) == 1
