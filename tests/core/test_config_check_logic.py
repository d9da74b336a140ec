"""`config check`: the checks' pure logic, and the command offline (no service is asked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from ordertrack.config import load_pipeline_config
from ordertrack.kafka.admin import pipeline_topics
from ordertrack.preflight.findings import Report, error, unreachable, warning
from ordertrack.preflight.kafka import topic_findings
from ordertrack.preflight.source import (
    Column,
    SourceTable,
    covering_unique_index,
    cursor_type_problem,
    replica_grant,
    table_findings,
)
from ordertrack.preflight.warehouse import safe_url, url_findings
from ordertrack.settings import load_settings
from ordertrack.tables import TableRegistry

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))
# Nothing listens on port 1: a check that asked a service would fail or wait.
NO_SERVICES = {"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": "1", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
               "MYSQL_PASSWORD": "hunter2-secret"}


@pytest.fixture(scope="module")
def config():
    return load_pipeline_config()


@pytest.fixture(scope="module")
def spath(config):
    return TableRegistry(config).get("uni_tracking_spath")


def _col(name: str, data_type: str, column_type: str | None = None) -> Column:
    return Column(name, data_type, column_type or data_type)


def _spath_table(**changes) -> SourceTable:
    """uni_tracking_spath as the shipped schema declares it, with `changes` applied."""
    columns = {c.name.lower(): c for c in [
        _col("id", "bigint", "bigint(20) unsigned"), _col("order_id", "bigint", "bigint(20) unsigned"),
        _col("traceSeq", "int", "int(10) unsigned"), _col("pathTime", "int", "int(10) unsigned"),
        _col("event_code", "varchar", "varchar(32)"),
    ]}
    indexes = {"PRIMARY": ("id",), "uk_order_trace": ("order_id", "traceSeq")}
    columns.update(changes.get("columns", {}))
    for name in changes.get("drop_columns", ()):
        columns.pop(name.lower())
    indexes = changes.get("indexes", indexes)
    return SourceTable(columns, indexes)


# -- the cursor column --------------------------------------------------------------------------

@pytest.mark.parametrize("data_type", ["int", "bigint", "INT", "integer"])
def test_integer_columns_wide_enough_hold_unix_seconds(data_type):
    assert cursor_type_problem(_col("t", data_type)) is None


@pytest.mark.parametrize("data_type", ["datetime", "timestamp", "varchar", "decimal", "double", "date"])
def test_a_non_integer_cursor_is_refused(data_type):
    assert "not an integer" in cursor_type_problem(_col("t", data_type, f"{data_type}(6)"))


@pytest.mark.parametrize("data_type", ["tinyint", "smallint", "mediumint"])
def test_a_small_integer_cannot_hold_unix_seconds(data_type):
    assert "too small" in cursor_type_problem(_col("t", data_type))


def test_a_healthy_table_has_no_findings(spath):
    assert table_findings(spath, 2, _spath_table(), "ordertrack") == []


def test_column_names_match_case_insensitively_as_in_mysql(spath):
    table = _spath_table(columns={"pathtime": _col("PATHTIME", "int")})
    assert table_findings(spath, 2, table, "ordertrack") == []


def test_a_missing_cursor_column_names_the_field_and_the_candidates(spath):
    [f] = table_findings(spath, 2, _spath_table(drop_columns=["pathTime"]), "ordertrack")
    assert (f.severity, f.check, f.subject) == ("error", "source.cursor_column", "uni_tracking_spath")
    assert "tables[2].timestamp_column" in f.message and "'pathTime'" in f.message
    assert "integer columns: id, order_id, traceSeq" in f.message


def test_a_datetime_cursor_is_an_error(spath):
    table = _spath_table(columns={"pathtime": _col("pathTime", "datetime", "datetime(6)")})
    [f] = table_findings(spath, 2, table, "ordertrack")
    assert f.check == "source.cursor_column" and "datetime(6), not an integer" in f.message


def test_a_missing_table_says_create_correct_or_grant(spath):
    [f] = table_findings(spath, 2, None, "ordertrack")
    assert f.check == "source.table"
    assert "tables[2].full_name" in f.message and "GRANT SELECT ON kuaisong.uni_tracking_spath TO 'ordertrack'" in f.message


# -- keys ---------------------------------------------------------------------------------------

def test_a_unique_index_on_exactly_the_key_or_part_of_it_makes_it_unique():
    table = _spath_table()
    assert covering_unique_index(table, ("order_id", "traceSeq")) == "uk_order_trace"
    assert covering_unique_index(table, ("id", "pathTime")) == "PRIMARY"
    assert covering_unique_index(table, ("traceseq", "ORDER_ID")) == "uk_order_trace"
    assert covering_unique_index(table, ("order_id",)) is None
    assert covering_unique_index(table, ("pathTime",)) is None


def test_a_key_without_a_unique_index_is_an_error_listing_the_indexes(spath):
    table = _spath_table(indexes={"PRIMARY": ("id",)})
    [f] = table_findings(spath, 2, table, "ordertrack")
    assert f.check == "source.primary_key" and "tables[2].primary_key" in f.message
    assert "not unique in the source" in f.message and "PRIMARY (id)" in f.message


def test_a_table_without_any_unique_index_fails_key_and_pages(spath):
    checks = [f.check for f in table_findings(spath, 2, _spath_table(indexes={}), "ordertrack")]
    assert checks == ["source.primary_key", "source.cdc_id_column"]


def test_a_key_column_that_does_not_exist_is_named(spath):
    [f] = table_findings(spath, 2, _spath_table(drop_columns=["traceSeq"]), "ordertrack")
    assert f.check == "source.primary_key" and "'traceSeq'" in f.message


def test_a_missing_tie_breaker_is_an_error(spath):
    table = _spath_table(drop_columns=["id"], indexes={"uk_order_trace": ("order_id", "traceSeq")})
    [f] = table_findings(spath, 2, table, "ordertrack")
    assert f.check == "source.cdc_id_column" and "tables[2].cdc_id_column" in f.message


def test_a_tie_breaker_without_a_unique_index_could_lose_rows_between_pages(spath):
    table = _spath_table(indexes={"uk_order_trace": ("order_id", "traceSeq")})
    [f] = table_findings(spath, 2, table, "ordertrack")
    assert f.check == "source.cdc_id_column" and "skipped or repeated" in f.message


def test_the_replica_grant_is_named_for_the_server():
    assert replica_grant("10.11.6-MariaDB-0+deb12u1-log").startswith("SLAVE MONITOR")
    assert replica_grant("8.4.2") == "REPLICATION CLIENT"


# -- topics -------------------------------------------------------------------------------------

def test_every_missing_topic_is_an_error_saying_topics_create(config):
    needed = pipeline_topics(config)
    existing = {t.name: t.partitions for t in needed if t.role == "table" and "spath" not in t.name}
    found = topic_findings(needed, existing)
    assert [f.subject for f in found] == ["kuaisong.uni_tracking_spath", "ordertrack.watermarks", "ordertrack.dead_letter"]
    assert all(f.severity == "error" and "run `ordertrack topics create`" in f.message for f in found)
    assert topic_findings(needed, {t.name: 1 for t in needed}) == []


# -- the warehouse URL --------------------------------------------------------------------------

def _settings(url: str):
    s = load_settings()
    return s.model_copy(update={"warehouse": s.warehouse.model_copy(update={"url": url})})


def test_warehouse_url_findings(config):
    assert url_findings(config, _settings("duckdb:///w.duckdb")) == []
    [bad] = url_findings(config, _settings("sqlite:///w.db"))
    assert bad.severity == "error" and "'sqlite'" in bad.message
    [empty] = url_findings(config, _settings("duckdb:///"))
    assert empty.severity == "error"
    [mismatch] = url_findings(config, _settings("redshift://h:5439/db"))
    assert mismatch.severity == "error" and "set target.type to redshift" in mismatch.message


def test_urls_are_shown_without_credentials():
    assert safe_url("redshift://u:pw-secret@host:5439/db") == "redshift://host:5439/db"
    assert safe_url("duckdb:///a/b.duckdb") == "duckdb:///a/b.duckdb"


# -- the report ---------------------------------------------------------------------------------

def test_exit_codes():
    report = Report("p.yaml", 3)
    assert report.exit_code == 0
    report.findings.append(warning("source", "source.grant.process", "w"))
    assert report.exit_code == 0
    report.findings.append(unreachable("kafka", "kafka.connect", "away"))
    assert report.exit_code == 4
    report.findings.append(error("source", "source.cursor_column", "fix it"))
    assert report.exit_code == 2, "a problem to fix wins: retrying cannot cure it"


def test_secrets_are_redacted_from_every_message():
    report = Report("p.yaml", 3, findings=[error("source", "source.connect", "login with pw-secret-1 failed")])
    out = report.redacted([SecretStr("pw-secret-1").get_secret_value(), "", "ab"])
    assert out.findings[0].message == "login with *** failed"


# -- the command, offline ------------------------------------------------------------------------

def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([ORDERTRACK, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def test_offline_checks_the_yaml_alone_and_asks_no_service():
    t0 = time.monotonic()
    r = cli("config", "check", "--offline", **NO_SERVICES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 < 8, "an unreachable Kafka would have taken its 10 s timeout"
    assert "ok (3 tables)" in r.stdout and "not checked (--offline)" in r.stdout
    assert "hunter2-secret" not in r.stdout + r.stderr


def test_offline_json_lists_a_bad_warehouse_url_and_exits_2():
    r = cli("config", "check", "--offline", "--json", WAREHOUSE_URL="sqlite:///x.db", **NO_SERVICES)
    assert r.returncode == 2, r.stderr
    report = json.loads(r.stdout)
    assert report["checked"] == ["config"] and report["ok"] is False and report["exit_code"] == 2
    assert [p["check"] for p in report["problems"]] == ["warehouse.url"]


def test_a_bad_yaml_is_one_json_error_too(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("pipeline: {name: x}\nsource: {database: kuaisong}\ntables: [{full_name: kuaisong.t}]\n")
    r = cli("--config", str(cfg), "config", "check", "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    [problem] = json.loads(r.stdout)["problems"]
    assert problem["check"] == "config.yaml" and "tables[0].timestamp_column" in problem["message"]


def test_a_bad_environment_variable_is_a_config_error():
    r = cli("config", "check", "--offline", MYSQL_PORT="not-a-port")
    assert r.returncode == 2 and "MYSQL_PORT" in r.stderr and "Traceback" not in r.stderr
