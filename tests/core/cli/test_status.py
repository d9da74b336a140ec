"""`ordertrack status` against the real local stack: fresh after a run, a planted lag and a stale
watermark named (exit 1), a service away (exit 4, one sentence), no secret in the document."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from ordertrack.settings import load_settings
from ordertrack.timeparse import format_utc
from tests.support.kafka_source import db_now, insert
from tests.support.pipeline_env import ORDERTRACK
from tests.support.stderr import Stderr
from tests.support.waits import wait_until

integration = pytest.mark.integration

ORDER_COLUMNS = ("order_id", "order_sn", "partner_id", "user_id", "add_time")


def status(env, *args: str, **variables: str) -> tuple[subprocess.CompletedProcess, dict]:
    r = env.cli("status", "--json", *args, timeout=120, **variables)
    assert "Traceback" not in r.stderr, r.stderr
    return r, json.loads(r.stdout)


def by_table(doc: dict) -> dict[str, dict]:
    return {t["table"]: t for t in doc["tables"]}


def errors(r: subprocess.CompletedProcess) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("error:")]


def orders(mariadb_admin, env, ids: range, add_time: int) -> None:
    insert(mariadb_admin, f"`{env.db}`.ecs_order_info", ORDER_COLUMNS, [(i, f"SN{i}", 1, 1, add_time) for i in ids])


@integration
def test_after_run_once_every_table_is_fresh_with_its_watermark_and_landed_batch(make_env, mariadb_admin):
    env = make_env()
    env.generate(mariadb_admin, "--history-days", "0.05", "--orders-per-minute", "20", "--scan-interval-minutes", "10",
                 "--seed", "3")
    run = env.cli("run-once", "--json")
    assert run.returncode == 0, run.stderr
    published = {t["table"]: t for t in json.loads(run.stdout)["tables"]}

    r, doc = status(env)
    assert r.returncode == 0, (r.stderr, doc)
    assert doc["exit_code"] == 0 and doc["fresh"] is True and doc["unavailable"] == {}
    assert set(by_table(doc)) == {"ecs_order_info", "uni_tracking_info", "uni_tracking_spath"}
    for name, t in by_table(doc).items():
        assert t["freshness"] == {"verdict": "fresh", "problems": [], "unchecked": [], "connector": None}, name
        assert t["watermark"]["position_utc"] == format_utc(published[name]["window_end"]), name
        assert t["watermark"]["age_minutes"] < doc["limits"]["max_watermark_age_minutes"]
        assert t["last_window"]["status"] == "committed" and t["last_window"]["end_utc"] == t["watermark"]["position_utc"]
        assert t["published_last_hour"] == published[name]["published"] > 0, name
        assert t["ledger"]["last_landed_at_utc"] is not None and t["ledger"]["last_merged_at_utc"] is not None
        assert t["ledger"]["unmerged_batches"] == 0
        assert t["lag"]["minutes"] == 0 and t["lag"]["messages"] <= 3  # a commit marker per partition at most
        assert t["running"] == []
    assert all(s["reachable"] and s["error"] is None for s in doc["services"])
    assert {j["job"] for j in doc["scheduler"]["jobs"]} == {"retention", "archive", "merge", "vacuum", "dq"}

    human = env.cli("status")
    assert human.returncode == 0, human.stderr
    assert "every table fresh (exit 0)" in human.stdout and "uni_tracking_spath" in human.stdout


@integration
def test_a_planted_lag_and_a_stale_watermark_are_both_reported_and_exit_1(make_env, mariadb_admin):
    env = make_env(dq={"max_lag_messages": 5})
    now = db_now(mariadb_admin)
    orders(mariadb_admin, env, range(1, 21), now - 1200)
    assert env.cli("run-once").returncode == 0
    # Lag: the orders' period published again (a replay), and not landed.
    assert env.cli("watermarks", "set", "--table", "ecs_order_info", "--at", str(now - 1800)).returncode == 0
    produced = env.cli("produce", "--once", "--table", "ecs_order_info")
    assert produced.returncode == 0, produced.stderr
    # Stale: a watermark moved two hours back, past the 30-minute limit.
    assert env.cli("watermarks", "set", "--table", "uni_tracking_spath", "--at", str(now - 7200)).returncode == 0

    r, doc = status(env)
    assert r.returncode == 1, (r.stderr, doc)
    assert doc["exit_code"] == 1 and doc["fresh"] is False and errors(r) == []
    tables = by_table(doc)
    lagging = tables["ecs_order_info"]
    assert lagging["freshness"]["verdict"] == "stale"
    assert lagging["lag"]["messages"] >= 20
    assert [p for p in lagging["freshness"]["problems"] if p.startswith(f"consumer lag {lagging['lag']['messages']} ")]
    assert lagging["last_window"]["rows"] == 20 and lagging["published_last_hour"] == 40  # the run and the replay
    stale = tables["uni_tracking_spath"]
    assert stale["freshness"]["verdict"] == "stale" and stale["last_window"]["status"] == "set"
    assert stale["watermark"]["age_minutes"] >= 120
    assert any("minutes behind now (limit 30)" in p for p in stale["freshness"]["problems"])
    assert tables["uni_tracking_info"]["freshness"]["verdict"] == "fresh"
    # What `lag` counts is what status shows.
    lag = json.loads(env.cli("lag", "--table", "ecs_order_info", "--json").stdout)
    assert sum(p["lag_messages"] for p in lag) == lagging["lag"]["messages"]


@integration
def test_a_warehouse_nothing_landed_in_is_reported_empty_and_not_created(make_env, mariadb_admin):
    env = make_env(dq={"max_lag_messages": 5})
    orders(mariadb_admin, env, range(1, 11), db_now(mariadb_admin) - 1200)
    assert env.cli("produce", "--once").returncode == 0
    r, doc = status(env)
    assert r.returncode == 1, (r.stderr, doc)  # everything published is lag
    assert not env.warehouse.exists()
    warehouse = next(s for s in doc["services"] if s["service"] == "warehouse")
    assert warehouse["reachable"] and warehouse["note"] == "not created yet: nothing has landed"
    orders_status = by_table(doc)["ecs_order_info"]
    assert orders_status["lag"]["messages"] >= 10 and orders_status["freshness"]["verdict"] == "stale"
    assert orders_status["ledger"] == {"last_landed_at_utc": None, "last_merged_at_utc": None, "unmerged_batches": 0}


@integration
@pytest.mark.parametrize("away", ["kafka", "warehouse"])
def test_a_service_away_exits_4_with_one_sentence_and_the_rest_still_reported(make_env, mariadb_admin, away, tmp_path):
    env = make_env()
    orders(mariadb_admin, env, range(1, 6), db_now(mariadb_admin) - 1200)
    assert env.cli("run-once").returncode == 0
    if away == "kafka":
        variables = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
        needle, kept, lost = "Kafka at 127.0.0.1:1 did not answer", "ledger", "watermarks"
    else:
        junk = tmp_path / "not_a_warehouse.duckdb"
        junk.write_text("this is no DuckDB file\n")
        variables = {"WAREHOUSE_URL": f"duckdb:///{junk}"}
        needle, kept, lost = str(junk), "watermarks", "ledger"

    r, doc = status(env, **variables)
    assert r.returncode == 4, (r.stderr, doc)
    (sentence,) = errors(r)
    assert needle in sentence
    service = next(s for s in doc["services"] if s["service"] == away)
    assert service["reachable"] is False and needle in service["error"]
    assert lost in doc["unavailable"] and kept not in doc["unavailable"]
    orders_status = by_table(doc)["ecs_order_info"]
    if away == "kafka":
        assert orders_status["watermark"] is None and orders_status["ledger"]["last_landed_at_utc"] is not None
    else:
        assert orders_status["watermark"] is not None and orders_status["ledger"] is None
    assert all(t["freshness"]["verdict"] == "unknown" for t in doc["tables"])

    human = env.cli("status", **variables)
    assert human.returncode == 4 and "Traceback" not in human.stderr + human.stdout
    assert len(errors(human)) == 1 and "DOWN" in human.stdout and "unavailable" in human.stdout


@integration
def test_the_json_document_holds_no_password(make_env):
    env = make_env()
    settings = load_settings()
    secrets = [v.get_secret_value() for v in (settings.mysql.password, settings.workload.password) if v is not None]
    assert any(len(s) >= 4 for s in secrets), "the local stack's accounts have passwords"
    r, doc = status(env)
    assert r.returncode == 1  # nothing was ever published: no watermark is stale
    for secret in secrets:
        assert secret not in r.stdout + r.stderr
    # A refused login is told without the password that was refused.
    wrong = "hunter2-not-the-password"
    r, doc = status(env, MYSQL_PASSWORD=wrong)
    assert r.returncode == 4
    source = next(s for s in doc["services"] if s["service"] == "source")
    assert not source["reachable"] and "check MYSQL_USER and MYSQL_PASSWORD" in source["error"]
    assert wrong not in r.stdout + r.stderr and not any(s in r.stdout for s in secrets)


@integration
def test_watch_redraws_until_ctrl_c_then_exits_0(make_env):
    env = make_env()
    proc = subprocess.Popen(
        [ORDERTRACK, "--config", str(env.config_path), "--log-level", "DEBUG", "status", "--watch", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env.env_vars, "ORDERTRACK_LOG_FORMAT": "json"},
    )
    try:
        log = Stderr(proc.stderr)
        wait_until("two refreshes", lambda: log.count('"status.gathered"') >= 2, timeout=90,
                   context=lambda: "".join(log.lines[-10:]))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "ordertrack status at" in out and "Traceback" not in "".join(log.lines)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ORDERTRACK, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "needle"), [
    (("10",), "give --watch too"),
    (("--watch", "--json"), "give only one of them"),
    (("--watch", "0.1"), "--watch 0.1 is too short"),
    (("--table", "orders"), "orders"),
])
def test_nonsense_options_are_one_sentence_and_exit_2(args, needle):
    r = run("status", *args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    (sentence,) = errors(r)
    assert needle in sentence
