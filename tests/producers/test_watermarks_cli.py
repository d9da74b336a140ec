"""`ordertrack watermarks`: show, seed (dry run and apply), set, S3 import and export."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest

from ordertrack.settings import load_settings
from ordertrack.watermarks.s3_files import s3_client
from producers.runner import watermark_store
from tests.support.kafka_source import db_now

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket():
    s3 = s3_client(load_settings().s3)
    name = f"wm-{uuid.uuid4().hex[:8]}"
    try:
        s3.create_bucket(Bucket=name)
    except Exception as exc:  # moto not running
        from tests.conftest import service_missing

        service_missing(f"S3 (moto) at {load_settings().s3.endpoint_url_s3}: {exc}")
    return s3, name


def positions(env) -> dict[str, int]:
    return {t: wm.position for t, wm in watermark_store(env.config, load_settings()).latest().items()}


def test_seed_dry_run_changes_nothing_and_apply_moves_every_table(make_env, mariadb_admin):
    env = make_env(buffer_minutes=5)
    assert env.cli("watermarks", "set", "--table", "ecs_order_info", "--at", "2026-01-01 00:00:00").returncode == 0
    before = positions(env)
    dry = env.cli("watermarks", "seed", "--to-now")
    assert dry.returncode == 0 and "dry run" in dry.stdout
    assert positions(env) == before
    now = db_now(mariadb_admin)
    assert env.cli("watermarks", "seed", "--to-now", "--apply").returncode == 0
    after = positions(env)
    assert set(after) == {"ecs_order_info", "uni_tracking_info", "uni_tracking_spath"}
    assert all(abs(p - (now - 300)) <= 5 for p in after.values())
    shown = json.loads(env.cli("watermarks", "show", "--json").stdout)
    assert {r["table"]: r["status"] for r in shown} == dict.fromkeys(after, "seeded")


def test_s3_export_then_import_round_trips(make_env, bucket):
    s3, name = bucket
    env = make_env()
    env.cli("watermarks", "set", "--table", "uni_tracking_spath", "--at", "2026-11-01 08:30:00")
    env.cli("watermarks", "set", "--table", "ecs_order_info", "--at", "2026-11-02 09:00:00")
    exported = env.cli("watermarks", "export", "--to", f"s3://{name}/old/")
    assert exported.returncode == 0, exported.stderr
    key = f"old/{env.db}_uni_tracking_spath_uni_tracking_spath_raw.json"
    body = orjson.loads(s3.get_object(Bucket=name, Key=key)["Body"].read())
    assert body["mysql_state"]["last_timestamp"] == "2026-11-01T08:30:00Z"

    env.cli("watermarks", "set", "--table", "uni_tracking_spath", "--at", "2026-11-20 00:00:00")
    dry = env.cli("watermarks", "import", "--from", f"s3://{name}/old/")
    assert dry.returncode == 0 and positions(env)["uni_tracking_spath"] == 1795132800  # unchanged
    applied = env.cli("watermarks", "import", "--from", f"s3://{name}/old/", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert positions(env)["uni_tracking_spath"] == 1793521800  # 2026-11-01 08:30:00 UTC
    assert positions(env)["ecs_order_info"] == 1793610000  # 2026-11-02 09:00:00 UTC


def test_import_reads_a_file_the_old_system_wrote(make_env, bucket):
    s3, name = bucket
    env = make_env()
    s3.put_object(Bucket=name, Key=f"state/{env.db}_ecs_order_info_ecs_order_info_raw.json",
                  Body=b'{"mysql_state": {"last_timestamp": "2026-10-31T23:45:00+00:00", "rows": 120}}')
    s3.put_object(Bucket=name, Key=f"state/{env.db}_uni_tracking_info_uni_tracking_info_raw.json", Body=b"{}")
    bad = env.cli("watermarks", "import", "--from", f"s3://{name}/state/", "--apply")
    assert bad.returncode == 2 and "not an old-format watermark file" in bad.stderr
    s3.delete_object(Bucket=name, Key=f"state/{env.db}_uni_tracking_info_uni_tracking_info_raw.json")
    ok = env.cli("watermarks", "import", "--from", f"s3://{name}/state/", "--apply")
    assert ok.returncode == 0, ok.stderr
    assert positions(env) == {"ecs_order_info": 1793490300}
