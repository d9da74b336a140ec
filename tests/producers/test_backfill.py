"""`ordertrack backfill --from S --to E` re-publishes [S, E) in chunks, beside the live producer,
and never moves the live watermark W, wherever S and E lie relative to it; a killed run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter

import orjson
import pytest

from ordertrack.settings import load_settings
from producers.runner import watermark_store
from tests.producers.tuning import live_position, set_watermark
from tests.support.kafka_source import consume_all, db_now, insert

pytestmark = pytest.mark.integration

SPATH = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def published(env) -> Counter:
    """order_id -> how many times it was published (each test row has its own order_id)."""
    return Counter(orjson.loads(m.key())["order_id"] for m in consume_all(env.bootstrap, env.topic("uni_tracking_spath")))


def rows_at(ids: range, t: int) -> list[tuple]:
    return [(i, 1, t, "ARRIVED_HUB", t) for i in ids]


def produce(env, *args: str) -> dict:
    out = env.config_path.with_suffix(".json")
    r = env.cli("produce", "--table", "uni_tracking_spath", "--once", *args, "--json-output", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())["tables"]["uni_tracking_spath"]


def backfill(env, *args: str, code: int = 0) -> dict:
    r = env.cli("backfill", "--table", "uni_tracking_spath", "--json", *args)
    assert r.returncode == code, r.stderr
    return json.loads(r.stdout)


def backfill_records(env, since: int) -> list:
    store = watermark_store(env.config, load_settings())
    return [m for m in store.history(since, include_backfill=True) if m.status == "backfill"]


def test_a_backfill_after_the_watermark_leaves_the_gap_to_the_next_cycle(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    w, s, e = now - 7200, now - 4000, now - 2000
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           rows_at(range(1, 101), now - 6000)          # in [W, S): only the live cycle publishes them
           + rows_at(range(101, 201), now - 3000)      # in [S, E): the backfill (and later the live cycle)
           + rows_at(range(201, 301), now - 1000))     # after E
    set_watermark(env, "uni_tracking_spath", w)

    result = backfill(env, "--from", str(s), "--to", str(e), "--chunk", "10m")["results"][0]
    assert (result["status"], result["rows"], result["chunks"]) == ("published", 100, 4)  # 2000 s in 600 s chunks
    assert set(published(env)) == set(range(101, 201))
    assert live_position(env, "uni_tracking_spath") == w  # untouched

    store = watermark_store(env.config, load_settings())
    assert [m.status for m in store.history(now - 86400)] == ["set"]  # the live history knows no backfill
    records = backfill_records(env, now - 86400)
    assert [(m.window_start, m.position) for m in records] == [(s, s + 600), (s + 600, s + 1200), (s + 1200, s + 1800),
                                                                (s + 1800, e)]
    assert sum(m.row_count for m in records) == 100
    assert {(m.run_id, m.run_start, m.run_end) for m in records} == {(result["run_id"], s, e)}

    live = produce(env)
    assert (live["window_start"], live["backfill"]) == (w, False)
    counts = published(env)
    assert set(counts) == set(range(1, 301))
    assert {i for i, n in counts.items() if n > 1} == set(range(101, 201))  # only the backfill's rows twice
    assert live_position(env, "uni_tracking_spath") >= now - 300  # the source's clock minus the buffer


def test_a_backfill_before_the_watermark_does_not_make_the_next_cycle_republish(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           rows_at(range(1, 101), now - 3000)          # the backfill's [S, E)
           + rows_at(range(101, 201), now - 1500)      # in [E, W): published by the first live cycle
           + rows_at(range(201, 301), now - 600))      # too
    set_watermark(env, "uni_tracking_spath", now - 2000)
    produce(env)                                       # live: [now-2000, now-300)
    w = live_position(env, "uni_tracking_spath")
    assert w >= now - 300

    assert backfill(env, "--from", str(now - 4000), "--to", str(now - 2000))["results"][0]["rows"] == 100
    assert live_position(env, "uni_tracking_spath") == w

    again = produce(env)
    assert again["window_start"] == w  # from the live position, not from the backfill's end
    counts = published(env)
    assert set(counts) == set(range(1, 301)) and max(counts.values()) == 1


def test_the_dry_run_shows_the_plan_and_publishes_nothing(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           rows_at(range(1, 51), now - 5000) + rows_at(range(51, 81), now - 100))
    plan = backfill(env, "--from", str(now - 7200), "--to", str(now - 3600), "--dry-run")
    assert plan["dry_run"] is True
    p = plan["plans"][0]
    assert (p["chunks"], p["source_rows"], p["resumed"], p["already_complete"]) == (1, 50, False, False)
    assert published(env) == Counter() and backfill_records(env, now - 86400) == []


def test_a_killed_backfill_resumes_after_its_last_committed_chunk(make_env, mariadb_admin):
    env = make_env(batch_size=200)
    now = db_now(mariadb_admin)
    s, e = now - 36_000, now - 600
    # 30,000 rows over almost ten hours: ten one-hour chunks.
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           [(i, 1, s + i * (e - s) // 30_001, "ARRIVED_HUB", s) for i in range(1, 30_001)])
    proc = env.popen("backfill", "--table", "uni_tracking_spath", "--from", str(s), "--to", str(e), "--chunk", "1h")
    try:
        for line in proc.stderr:
            if '"backfill.chunk.committed"' in line:
                break  # one chunk committed, the next under way
        assert proc.poll() is None, "the backfill finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = backfill_records(env, now - 86400)
    assert committed and max(m.position for m in committed) < e
    status = json.loads(env.cli("status", "--json", "--table", "uni_tracking_spath").stdout)
    running = status["tables"][0]["running"]
    assert [r["kind"] for r in running] == ["backfill"] and committed[0].run_id in running[0]["detail"]

    dry = backfill(env, "--from", str(s), "--to", str(e), "--dry-run")["plans"][0]
    assert dry["resumed"] is True and dry["run_id"] == committed[0].run_id
    result = backfill(env, "--from", str(s), "--to", str(e))["results"][0]
    assert result["status"] == "published" and result["run_id"] == committed[0].run_id
    assert result["resumed_from"] != result["from"]
    counts = published(env)  # the killed chunk's transaction was aborted: every row exactly once
    assert set(counts) == set(range(1, 30_001)) and max(counts.values()) == 1
    assert live_position(env, "uni_tracking_spath") is None  # a backfill never writes the live position

    # Finished: the same command again says so and publishes nothing; --restart publishes again.
    assert backfill(env, "--from", str(s), "--to", str(e))["results"][0]["status"] == "already_complete"
    assert max(published(env).values()) == 1
    again = backfill(env, "--from", str(s), "--to", str(e), "--restart")["results"][0]
    assert again["status"] == "published" and again["run_id"] != result["run_id"] and again["rows"] == 30_000


def test_a_backfill_beside_the_live_producer_and_the_worker_loses_and_repeats_nothing(make_env, mariadb_admin):
    """Six hours of history (older than the live producer's first window) backfilled while a
    workload writes, the live producer publishes every 2 s and the worker lands: the live windows
    stay a gapless chain, every (partition, offset) lands once, every key once in its mart, and
    source and marts reconcile."""
    from tests.consumers.test_worker import stop
    from tests.support.stderr import Stderr
    from tests.support.waits import wait_until

    # The live writer stamps a row's cursor before its transaction starts: the buffer covers that
    # skew (with none, a row committed just after a window passed its cursor is missed, by design).
    env = make_env(buffer_minutes=1, lookback_minutes=30)
    env.generate(mariadb_admin, "--history-days", "0.25", "--orders-per-minute", "15", "--scan-interval-minutes", "60",
                 "--seed", "11")
    start = db_now(mariadb_admin)
    quiet = subprocess.DEVNULL
    procs = {
        "writer": env.popen("generate", "--live", "--duration", "60s", "--orders-per-minute", "600",
                            "--scan-interval-minutes", "0.5", "--seed", "12", stdout=quiet, MYSQL_DATABASE=env.db),
        "worker": env.popen("consume", stdout=quiet),
        "producer": env.popen("produce", "--every", "2s", stdout=quiet),
    }
    logs = {k: Stderr(p.stderr) for k, p in procs.items()}
    try:
        logs["producer"].wait_for("producer.window.committed", timeout=90)
        tables = ["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"]
        r = env.cli("backfill", *[a for t in tables for a in ("--table", t)], "--from", str(start - 6 * 3600 - 600),
                    "--to", str(start - 60), "--chunk", "1h", "--json", timeout=600)
        assert r.returncode == 0, r.stderr
        results = json.loads(r.stdout)["results"]
        assert [x["status"] for x in results] == ["published"] * 3 and all(x["rows"] > 0 for x in results)
        assert procs["writer"].wait(180) == 0, "".join(logs["writer"].lines[-20:])
        end = db_now(mariadb_admin) + 1
        wait_until("the live watermarks to pass the end of the writes",
                   lambda: all((live_position(env, t) or 0) >= end for t in tables), timeout=180)

        last: dict[str, str] = {}

        def reconciled() -> bool:
            for t in tables:
                r = env.cli("dq", "reconcile", "--table", t, "--until", "2100-01-01 00:00:00", "--json", "--limit", "5")
                if r.returncode != 0:
                    last["why"] = f"{t}: {r.stdout[-1500:]} {r.stderr[-500:]}"
                    return False
            return True

        wait_until("source and marts to reconcile", reconciled, timeout=240,
                   context=lambda: last.get("why", "") + "\nworker: " + "".join(logs["worker"].lines[-10:])
                   + "\nproducer: " + "".join(logs["producer"].lines[-5:]))
        for name in ("worker", "producer"):
            assert procs[name].poll() is None, "".join(logs[name].lines[-20:])
    finally:
        for p in procs.values():
            if p.poll() is None:
                stop(p)
    engine = env.engine()
    for t in tables:
        spec = env.spec(t)
        raw = f'"{spec.raw_schema}"."{spec.raw_table}"'
        keys = ", ".join(f'"{k}"' for k in spec.key_columns)
        n, distinct = engine.query(f"SELECT COUNT(*), COUNT(DISTINCT (_kafka_partition, _kafka_offset)) FROM {raw}")[0]
        assert n == distinct, f"{t}: an offset landed twice"
        n, distinct = engine.query(f'SELECT COUNT(*), COUNT(DISTINCT ({keys})) FROM "{spec.mart_schema}"."{spec.mart_table}"')[0]
        assert n == distinct, f"{t}: a key twice in the mart"
    # The live windows: one gapless chain from the first window to the last, whatever the backfill wrote.
    store = watermark_store(env.config, load_settings())
    for t in tables:
        chain = [m for m in store.history(start - 86400) if m.table == t and m.status == "committed"]
        assert chain and all(b.window_start == a.position for a, b in zip(chain, chain[1:])), t
    dq = env.cli("dq", "run", "--check", "extraction", "--json")
    assert dq.returncode == 0, dq.stdout[-3000:]
