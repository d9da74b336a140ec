"""A bounded window (`produce --start S --end-time E`, a backfill) publishes [S, E) and never
moves the live watermark W, wherever S and E lie relative to it."""

from __future__ import annotations

import json
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


def test_a_backfill_after_the_watermark_leaves_the_gap_to_the_next_cycle(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    w, s, e = now - 7200, now - 4000, now - 2000
    insert(mariadb_admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           rows_at(range(1, 101), now - 6000)          # in [W, S): only the live cycle publishes them
           + rows_at(range(101, 201), now - 3000)      # in [S, E): the backfill (and later the live cycle)
           + rows_at(range(201, 301), now - 1000))     # after E
    set_watermark(env, "uni_tracking_spath", w)

    backfill = produce(env, "--start", str(s), "--end-time", str(e))
    assert (backfill["status"], backfill["backfill"], backfill["rows"]) == ("published", True, 100)
    assert set(published(env)) == set(range(101, 201))
    assert live_position(env, "uni_tracking_spath") == w  # untouched

    store = watermark_store(env.config, load_settings())
    assert [m.status for m in store.history(now - 86400)] == ["set"]  # the live history knows no backfill
    records = [m for m in store.history(now - 86400, include_backfill=True) if m.status == "backfill"]
    assert [(m.window_start, m.position, m.row_count) for m in records] == [(s, e, 100)]

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

    backfill = produce(env, "--start", str(now - 4000), "--end-time", str(now - 2000))
    assert backfill["rows"] == 100
    assert live_position(env, "uni_tracking_spath") == w

    again = produce(env)
    assert again["window_start"] == w  # from the live position, not from the backfill's end
    counts = published(env)
    assert set(counts) == set(range(1, 301)) and max(counts.values()) == 1
