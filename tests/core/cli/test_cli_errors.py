"""Bad input and missing services: one sentence, a non-zero exit, no traceback, no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ORDERTRACK, *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def assert_one_sentence(r: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    for n in needles:
        assert n in errors[0]


def test_bad_config_names_file_and_field(tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("pipeline: {name: x}\nsource: {database: kuaisong}\ntables: [{full_name: kuaisong.t}]\n")
    r = cli("--config", str(cfg), "config", "check")
    assert_one_sentence(r, 2, str(cfg), "tables[0].timestamp_column")


def test_config_check_accepts_the_default():
    r = cli("config", "check", "--offline")
    assert r.returncode == 0, r.stderr
    assert "ok (3 tables)" in r.stdout


def test_generate_without_a_mode_says_what_to_give():
    assert_one_sentence(cli("generate"), 2, "--history-days")


def test_unreachable_mysql_is_one_sentence_without_the_password():
    r = cli("source", "counts", MYSQL_HOST="127.0.0.1", MYSQL_PORT="1", MYSQL_PASSWORD="hunter2-secret")
    assert_one_sentence(r, 4, "Cannot reach MySQL at 127.0.0.1:1", "ordertrack stack up")
    assert "hunter2-secret" not in r.stderr + r.stdout


@pytest.mark.integration
def test_wrong_mysql_password_is_named_not_shown(settings):
    r = cli("source", "counts", MYSQL_PASSWORD="hunter2-secret")
    assert_one_sentence(r, 4, "check MYSQL_USER and MYSQL_PASSWORD")
    assert "hunter2-secret" not in r.stderr + r.stdout


def test_unreachable_kafka_is_one_sentence():
    r = cli("topics", "list", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert_one_sentence(r, 4, "Kafka at 127.0.0.1:1 did not answer")


def test_an_unknown_option_is_a_usage_error_not_an_internal_error():
    r = cli("watermarks", "set", "--nonsense")
    assert r.returncode == 2 and "No such option: --nonsense" in r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_resolving_needs_exactly_one_of_order_and_table():
    assert_one_sentence(cli("exceptions", "resolve", "--type", "dead_letter", "--note", "x"), 2, "--order-id")


def test_a_dq_check_that_cannot_reach_kafka_is_named_and_the_run_exits_4_not_1(tmp_path):
    """An outage (could not check) and a data problem (exceptions open) exit differently."""
    r = cli("dq", "run", "--check", "freshness", "--json", WAREHOUSE_URL=f"duckdb:///{tmp_path}/w.duckdb",
            KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert r.returncode == 4 and "Traceback" not in r.stderr
    report = json.loads(r.stdout)
    assert report["failed_checks"] == ["freshness"] and report["data_problems"] is False
    assert [c["check"] for c in report["could_not_check"]] == ["freshness"]
    (result,) = json.loads(r.stdout)["checks"]
    assert result["status"] == "error" and result["message"].startswith("Kafka at 127.0.0.1:1 did not answer")
