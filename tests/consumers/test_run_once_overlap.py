"""`run-once` lands each sub-window while the producer (a child process) publishes the next, on the
real services: every row lands once, in raw and in its mart, and a failure of the producer's
process still reaches the command's exit code."""

from __future__ import annotations

import json

import pytest

from tests.producers.tuning import retune, set_watermark
from tests.support.kafka_source import db_now, insert

pytestmark = pytest.mark.integration

SPATH = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def test_run_once_lands_a_catch_up_of_many_sub_windows_exactly_once(make_env, mariadb_admin):
    env = retune(make_env(batch_size=1000), window={"max_window_rows": 3000, "max_window_span_minutes": 60})
    now = db_now(mariadb_admin)
    start = now - 2 * 3600
    rows = [(i, 1, start + i % 5000, "A", start) for i in range(1, 30_001)]
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH, rows)
    set_watermark(env, "uni_tracking_spath", start)

    r = env.cli("run-once", "--json")
    assert r.returncode == 0, r.stderr
    spath = {t["table"]: t for t in json.loads(r.stdout)["tables"]}["uni_tracking_spath"]
    assert spath["published"] == spath["landed"] == spath["raw_rows_total"] == spath["mart_rows"] == len(rows), spath
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
