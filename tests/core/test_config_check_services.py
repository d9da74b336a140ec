"""`config check` against the real services: each way the pipeline cannot work is found and named.

Every test runs the command on its own private pipeline (`make_env`: source database, topics,
config file) and breaks one thing.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
import yaml

from ordertrack.kafka.admin import KafkaAdmin
from ordertrack.settings import KafkaSettings
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

SECRET = "hunter2-secret"


def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = KafkaAdmin(KafkaSettings(bootstrap_servers=bootstrap))
    admin.delete_topics(names)
    # Deletion completes on the controller first; wait until the broker's metadata agrees.
    wait_until(f"topics {names} gone", lambda: not set(names) & set(admin.list_topics()), timeout=60)


def check(env, *args: str, **vars: str) -> tuple[subprocess.CompletedProcess, dict]:
    r = env.cli("config", "check", "--json", *args, timeout=120, **vars)
    assert "Traceback" not in r.stderr, r.stderr
    return r, json.loads(r.stdout)


def problems(report: dict, severity: str | None = None) -> list[dict]:
    return [p for p in report["problems"] if severity is None or p["severity"] == severity]


def edit_yaml(env, change: Callable[[dict], None]) -> None:
    raw = yaml.safe_load(env.config_path.read_text())
    change(raw)
    env.config_path.write_text(yaml.safe_dump(raw))


def table(raw: dict, name: str) -> dict:
    return next(t for t in raw["tables"] if t["full_name"].endswith(f".{name}"))


def test_a_healthy_pipeline_passes(make_env):
    env = make_env()
    r, report = check(env)
    assert r.returncode == 0 and report["ok"] and report["problems"] == [], report
    assert report["checked"] == ["config", "source", "kafka", "warehouse"]
    human = env.cli("config", "check")
    assert human.returncode == 0 and "ok (3 tables)" in human.stdout, human.stdout + human.stderr


def test_a_wrong_password_is_named_never_shown(make_env):
    env = make_env()
    r, report = check(env, MYSQL_PASSWORD=SECRET)
    assert r.returncode == 2
    [p] = problems(report, "error")
    assert p["check"] == "source.connect" and "MYSQL_PASSWORD" in p["message"] and not p["unreachable"]
    human = env.cli("config", "check", MYSQL_PASSWORD=SECRET)
    assert human.returncode == 2 and "check MYSQL_USER and MYSQL_PASSWORD" in human.stdout
    assert SECRET not in r.stdout + r.stderr + human.stdout + human.stderr


def test_an_unreachable_source_exits_4(make_env):
    env = make_env()
    r, report = check(env, MYSQL_HOST="127.0.0.1", MYSQL_PORT="1")
    assert r.returncode == 4
    [p] = problems(report)
    assert p["check"] == "source.connect" and p["unreachable"] and "Cannot reach MySQL at 127.0.0.1:1" in p["message"]


def test_a_timestamp_column_that_does_not_exist(make_env):
    env = make_env()
    edit_yaml(env, lambda raw: table(raw, "uni_tracking_info").update(timestamp_column="updated_at"))
    r, report = check(env)
    assert r.returncode == 2
    [p] = problems(report)
    assert (p["check"], p["subject"]) == ("source.cursor_column", "uni_tracking_info")
    assert "no column 'updated_at' (tables[1].timestamp_column)" in p["message"] and "update_time" in p["message"]


def test_a_cursor_column_that_is_not_an_integer(make_env, mariadb_admin):
    env = make_env()
    with mariadb_admin.cursor() as cur:
        cur.execute(f"ALTER TABLE `{env.db}`.uni_tracking_spath ADD COLUMN scanned_at DATETIME NULL")
    edit_yaml(env, lambda raw: table(raw, "uni_tracking_spath").update(timestamp_column="scanned_at"))
    r, report = check(env)
    assert r.returncode == 2
    [p] = problems(report)
    assert (p["check"], p["subject"]) == ("source.cursor_column", "uni_tracking_spath")
    assert "is datetime, not an integer column of unix seconds" in p["message"]


def test_a_primary_key_that_is_not_unique_in_the_source(make_env, mariadb_admin):
    env = make_env()
    with mariadb_admin.cursor() as cur:
        cur.execute(f"ALTER TABLE `{env.db}`.uni_tracking_spath DROP INDEX uk_order_trace")
    edit_yaml(env, lambda raw: table(raw, "ecs_order_info").update(primary_key=["partner_id"]))
    r, report = check(env)
    assert r.returncode == 2
    found = {p["subject"]: p for p in problems(report)}
    assert set(found) == {"ecs_order_info", "uni_tracking_spath"}
    assert all(p["check"] == "source.primary_key" for p in found.values())
    assert "(order_id, traceSeq)" in found["uni_tracking_spath"]["message"]
    assert "PRIMARY (order_id)" in found["ecs_order_info"]["message"]


@pytest.fixture
def source_user(mariadb_admin) -> Iterator[tuple[str, str]]:
    """A separate MariaDB account with no grant at all yet; dropped afterwards."""
    user, password = f"pt_check_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with mariadb_admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    try:
        yield user, password
    finally:
        with mariadb_admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_missing_process_and_replica_monitor_grants_are_errors(make_env, mariadb_admin, source_user):
    """Without them the producer runs but can pass rows an open transaction or a lagging replica
    has not committed yet, and lose them: the pipeline does not work as promised."""
    env = make_env()
    user, password = source_user
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT ON `{env.db}`.* TO '{user}'@'%'")
    r, report = check(env, MYSQL_USER=user, MYSQL_PASSWORD=password, MYSQL_DATABASE=env.db)
    assert r.returncode == 2, report
    found = {p["check"]: p for p in problems(report)}
    assert set(found) == {"source.grant.process", "source.grant.replica_monitor"}
    assert all(p["severity"] == "error" for p in found.values())
    assert f"GRANT PROCESS ON *.* TO '{user}'" in found["source.grant.process"]["message"]
    assert f"GRANT SLAVE MONITOR ON *.* TO '{user}'" in found["source.grant.replica_monitor"]["message"]
    human = env.cli("config", "check", MYSQL_USER=user, MYSQL_PASSWORD=password, MYSQL_DATABASE=env.db)
    assert human.returncode == 2 and "ok (" not in human.stdout, human.stdout
    assert password not in human.stdout + human.stderr + r.stdout


def test_a_pipeline_of_debezium_tables_needs_none_of_the_pollers_grants(make_env, mariadb_admin, source_user):
    """PROCESS, the replica-monitor grant and the keyset index are the poller's needs; binlog CDC
    has its own account, which `connectors apply` checks."""
    env = make_env(strategy="debezium")
    user, password = source_user
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT ON `{env.db}`.* TO '{user}'@'%'")
    r, report = check(env, MYSQL_USER=user, MYSQL_PASSWORD=password, MYSQL_DATABASE=env.db)
    assert r.returncode == 0, report
    assert not any(p["check"].startswith("source.grant.") for p in problems(report)), report


def test_a_missing_select_grant_is_an_error(make_env, mariadb_admin, source_user):
    env = make_env()
    user, password = source_user
    with mariadb_admin.cursor() as cur:
        for t in ("ecs_order_info", "uni_tracking_info"):
            cur.execute(f"GRANT SELECT ON `{env.db}`.`{t}` TO '{user}'@'%'")
        # Visible in the catalog, but not readable.
        cur.execute(f"GRANT INSERT ON `{env.db}`.uni_tracking_spath TO '{user}'@'%'")
        cur.execute(f"GRANT PROCESS, SLAVE MONITOR ON *.* TO '{user}'@'%'")
    r, report = check(env, MYSQL_USER=user, MYSQL_PASSWORD=password, MYSQL_DATABASE=env.db)
    assert r.returncode == 2
    [p] = problems(report)
    assert (p["check"], p["subject"]) == ("source.select", "uni_tracking_spath")
    assert f"GRANT SELECT ON {env.db}.uni_tracking_spath TO '{user}'" in p["message"]


def test_a_user_without_the_default_database_is_told_so(make_env, mariadb_admin, source_user):
    env = make_env()
    user, password = source_user
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT ON `{env.db}`.* TO '{user}'@'%'")
    r, report = check(env, MYSQL_USER=user, MYSQL_PASSWORD=password, MYSQL_DATABASE="kuaisong")
    assert r.returncode == 2
    [p] = [p for p in problems(report, "error") if not p["check"].startswith("source.grant.")]
    assert p["check"] == "source.database" and "MYSQL_DATABASE" in p["message"]


def test_missing_topics_are_each_named(make_env, kafka_bootstrap):
    env = make_env()
    gone = [env.topic("uni_tracking_spath"), env.config.kafka.watermark_topic]
    delete_topics(kafka_bootstrap, gone)
    r, report = check(env)
    assert r.returncode == 2
    found = problems(report)
    assert sorted(p["subject"] for p in found) == sorted(gone)
    assert all(p["check"] == "kafka.topic" and "run `ordertrack topics create`" in p["message"] for p in found)
    # What it says to do is what cures it.
    created = wait_until("topics create to succeed after the deletion",
                         lambda: (c := env.cli("topics", "create")).returncode == 0 and c, timeout=60)
    assert "created 2 topic(s)" in created.stdout
    r, report = check(env)
    assert r.returncode == 0, report


def test_every_problem_is_reported_not_only_the_first(make_env, kafka_bootstrap):
    env = make_env()
    edit_yaml(env, lambda raw: table(raw, "ecs_order_info").update(timestamp_column="nope"))
    delete_topics(kafka_bootstrap, [env.config.kafka.dead_letter_topic])
    r, report = check(env)
    assert r.returncode == 2
    assert sorted(p["check"] for p in problems(report, "error")) == ["kafka.topic", "source.cursor_column"]
