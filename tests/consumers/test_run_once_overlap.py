"""`run-once` lands each sub-window while the producer (a child process) publishes the next, on the
real services: every row lands once, in raw and in its mart, and a failure of the producer's
process still reaches the command's exit code."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.producers.tuning import retune, set_watermark
from tests.support.kafka_source import db_now, insert
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

SPATH = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def catch_up(make_env, mariadb_admin, rows: int, batch_size: int, max_window_rows: int):
    """A test pipeline whose scan events hold `rows` rows over the last two hours, its live
    watermark before them: the next window is a catch-up of many sub-windows."""
    env = retune(make_env(batch_size=batch_size),
                 window={"max_window_rows": max_window_rows, "max_window_span_minutes": 60})
    start = db_now(mariadb_admin) - 2 * 3600
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           [(i, 1, start + i % 5000, "A", start) for i in range(1, rows + 1)])
    set_watermark(env, "uni_tracking_spath", start)
    return env


def test_run_once_lands_a_catch_up_of_many_sub_windows_exactly_once(make_env, mariadb_admin):
    rows = 30_000
    env = catch_up(make_env, mariadb_admin, rows, batch_size=1000, max_window_rows=3000)

    r = env.cli("run-once", "--json")
    assert r.returncode == 0, r.stderr
    spath = {t["table"]: t for t in json.loads(r.stdout)["tables"]}["uni_tracking_spath"]
    assert spath["published"] == spath["landed"] == spath["raw_rows_total"] == spath["mart_rows"] == rows, spath
    assert "producer.sub_window.committed" in r.stderr  # it was a catch-up of several transactions
    spec = env.spec("uni_tracking_spath")
    repeated = env.engine().query(
        f'SELECT COUNT(*) FROM (SELECT _kafka_partition, _kafka_offset FROM "{spec.raw_schema}"."{spec.raw_table}" '
        "GROUP BY 1, 2 HAVING COUNT(*) > 1) d")
    assert repeated == [(0,)]


def test_an_outage_in_the_producer_s_process_still_exits_4(make_env, mariadb_admin):
    env = make_env()
    r = env.cli("run-once", MYSQL_PORT="1")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
    except FileNotFoundError:
        return []


def _gone(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_killed_run_once_takes_its_producer_with_it_and_the_next_run_lands_everything_once(make_env, mariadb_admin):
    rows = 40_000
    env = catch_up(make_env, mariadb_admin, rows, batch_size=100, max_window_rows=2000)

    p = env.popen("run-once", stdout=subprocess.DEVNULL)
    try:
        producer = wait_until("run-once's producer process", lambda: _children(p.pid), timeout=60)[0]
    finally:
        p.kill()  # SIGKILL: no handler of the parent runs
        p.wait(30)
    wait_until("the producer to end with its parent", lambda: _gone(producer), timeout=90)

    r = env.cli("run-once", "--json")
    assert r.returncode == 0, r.stderr
    spec = env.spec("uni_tracking_spath")
    engine = env.engine()
    raw = f'"{spec.raw_schema}"."{spec.raw_table}"'
    assert engine.query(f"SELECT COUNT(*), COUNT(DISTINCT (_kafka_partition, _kafka_offset)) FROM {raw}") \
        == [(rows, rows)]
    assert engine.query(f'SELECT COUNT(*) FROM "{spec.mart_schema}"."{spec.mart_table}"') == [(rows,)]
