"""`ordertrack produce` as an operator runs it: refusals, dead letters, failures of one table."""

from __future__ import annotations

import json
import re

import orjson
import pytest

from ordertrack.settings import load_settings
from producers.runner import watermark_store
from tests.support.kafka_source import consume_all, db_now, insert

pytestmark = pytest.mark.integration


def test_clock_drift_past_the_limit_refuses_to_run(make_env):
    env = make_env(max_clock_drift_seconds=60)
    # The session's clock is set an hour back: the source now "says" it is an hour earlier.
    r = env.cli("produce", "--once", MYSQL_INIT_COMMAND="SET timestamp = UNIX_TIMESTAMP() - 3600")
    assert r.returncode == 5, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1
    assert "source database's clock" in err[0] and "this worker's clock" in err[0]
    # `SET timestamp` freezes the session clock when it connects, so the gap grows by a second or two.
    assert re.search(r"differ by 36\d\ds, over the limit of 60s", err[0])
    assert "Traceback" not in r.stderr
    assert watermark_store(env.config, load_settings()).latest() == {}


def test_bad_rows_go_to_the_dead_letter_topic_and_the_window_goes_on(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    t = now - 3600
    with mariadb_admin.cursor() as cur:
        # Loosen the copy of the schema so the source can hold what production sometimes does.
        cur.execute(f"ALTER TABLE `{env.db}`.uni_tracking_spath MODIFY order_id BIGINT UNSIGNED NULL, "
                    "ADD COLUMN raw_payload VARBINARY(16) NULL")
        cur.execute(f"ALTER TABLE `{env.db}`.uni_tracking_info MODIFY update_time DECIMAL(14,2) NOT NULL")
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", ("order_id", "traceSeq", "pathTime", "event_code", "add_time", "raw_payload"),
           [(1, 1, t, "OK", t, None), (None, 2, t, "NO_KEY", t, None), (3, 1, t, "BAD_BYTES", t, b"\xff\xfe"), (4, 1, t, "OK", t, b"ok")])
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_info", ("order_id", "tracking_number", "carrier_code", "add_time", "update_time"),
           [(1, "A", "KS", t, t), (2, "B", "KS", t, t + 0.5)])
    out = env.config_path.with_suffix(".json")
    r = env.cli("produce", "--once", "--json-output", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())["tables"]
    assert (report["uni_tracking_spath"]["rows"], report["uni_tracking_spath"]["dead_lettered"]) == (2, 2)
    assert (report["uni_tracking_info"]["rows"], report["uni_tracking_info"]["dead_lettered"]) == (1, 1)
    letters = [orjson.loads(m.value()) for m in consume_all(env.bootstrap, env.config.kafka.dead_letter_topic)]
    reasons = sorted((d["table"], d["reason"].split(":")[0]) for d in letters)
    assert reasons == [
        ("uni_tracking_info", "cursor column update_time is not an integer"),
        ("uni_tracking_spath", "key column(s) order_id are NULL"),
        ("uni_tracking_spath", "row cannot be serialized"),
    ]
    assert all(d["source"].startswith(env.db) and d["window_id"] for d in letters)
    good = sorted(orjson.loads(m.key())["order_id"] for m in consume_all(env.bootstrap, env.topic("uni_tracking_spath")))
    assert good == [1, 4]
    marks = watermark_store(env.config, load_settings()).latest()
    assert marks["uni_tracking_spath"].dead_lettered == 2


def test_a_failing_table_does_not_stop_the_others(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    insert(mariadb_admin, f"`{env.db}`.ecs_order_info", ("order_id", "order_sn", "partner_id", "user_id", "add_time"),
           [(i, f"SN{i}", 1, 1, now - 1000) for i in range(1, 51)])
    with mariadb_admin.cursor() as cur:
        cur.execute(f"DROP TABLE `{env.db}`.uni_tracking_info")
    out = env.config_path.with_suffix(".json")
    r = env.cli("produce", "--once", "--json-output", str(out))
    assert r.returncode == 1
    report = json.loads(out.read_text())
    assert report["status"] == "partial"
    assert report["tables"]["uni_tracking_info"]["status"] == "failed"
    assert "doesn't exist" in report["tables"]["uni_tracking_info"]["error"]
    assert report["tables"]["ecs_order_info"]["rows"] == 50
    assert report["tables"]["uni_tracking_spath"]["status"] in ("published", "empty")
    assert set(watermark_store(env.config, load_settings()).latest()) == {"ecs_order_info", "uni_tracking_spath"}


def test_unknown_table_and_bad_time_are_one_sentence(make_env):
    env = make_env()
    r = env.cli("produce", "--table", "orders")
    assert r.returncode == 2 and "unknown table 'orders'" in r.stderr and "Traceback" not in r.stderr
    r = env.cli("produce", "--end-time", "tomorrow")
    assert r.returncode == 2 and "not a time" in r.stderr


def test_the_long_running_loop_started_while_kafka_is_away_waits_instead_of_exiting(make_env):
    import os
    import signal
    import subprocess
    import time

    from tests.support.pipeline_env import ORDERTRACK

    env = make_env()
    proc = subprocess.Popen(
        [ORDERTRACK, "--config", str(env.config_path), "produce", "--every", "5s"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, **env.env_vars, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
    )
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while '"outage.started"' not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
            assert proc.poll() is None, seen
        assert '"outage.started"' in seen and '"what": "kafka"' in seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) != 0  # stopped while waiting: not a success, and no traceback
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
