"""`produce --end-time` and `backfill --from` that leave nothing to publish are refused with one
sentence and exit 2, instead of running an empty window with a negative hold (issue 11.6)."""

from __future__ import annotations

import json

import pytest

from ordertrack.timeparse import format_utc
from tests.producers.tuning import live_position, set_watermark
from tests.support.kafka_source import db_now

pytestmark = pytest.mark.integration


def one_sentence(r, code: int, *needles: str) -> str:
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == code and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def test_an_end_time_before_the_watermark_is_refused_and_nothing_moves(make_env, mariadb_admin):
    env = make_env()
    now = db_now(mariadb_admin)
    set_watermark(env, "uni_tracking_spath", now - 3600)
    out = env.config_path.with_suffix(".json")
    r = env.cli("produce", "--table", "uni_tracking_spath", "--end-time", str(now - 7200), "--json-output", str(out))
    one_sentence(r, 2, f"--end-time {format_utc(now - 7200)} is before the watermark of uni_tracking_spath",
                 "ordertrack backfill")
    assert "hold" not in r.stdout and not out.exists()
    assert live_position(env, "uni_tracking_spath") == now - 3600

    # The same period as a backfill is fine; an end at the watermark is an empty window, held 0s.
    r = env.cli("produce", "--table", "uni_tracking_spath", "--end-time", str(now - 3600), "--json-output", str(out))
    assert r.returncode == 0, r.stderr

    table = json.loads(out.read_text())["tables"]["uni_tracking_spath"]
    assert table["hold_seconds"] == 0 and table["status"] == "empty"


def test_a_start_past_what_the_source_can_publish_is_refused(make_env, mariadb_admin):
    env = make_env()  # buffer_minutes 5
    now = db_now(mariadb_admin)
    r = env.cli("backfill", "--table", "uni_tracking_spath", "--from", str(now + 600), "--to", str(now + 1200))
    one_sentence(r, 2, f"--from {format_utc(now + 600)} is not before", "5-minute buffer")
