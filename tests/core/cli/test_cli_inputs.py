"""Issue 11, items 6-8: nonsense input is one sentence and exit 2; a command says when it runs on
built-in defaults and never leaves a warehouse where none was configured; librdkafka's own lines go
through the project's logging instead of reaching the terminal raw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))
NOWHERE = "127.0.0.1:1"  # nothing listens there


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([ORDERTRACK, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**(os.environ if env is None else env), **extra})


def errors(r: subprocess.CompletedProcess) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("error:")]


def assert_one_sentence(r: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    assert len(errors(r)) == 1, r.stderr
    for n in needles:
        assert n in errors(r)[0], errors(r)[0]


def bare_env(**extra: str) -> dict[str, str]:
    """The environment of a shell that configured nothing of the pipeline."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("MYSQL_", "KAFKA_", "WAREHOUSE_", "WORKLOAD_", "AWS_", "ORDERTRACK_STATE_DIR"))}
    return {**keep, **extra}


# -- item 6: nonsense is refused, before anything connects ------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (("produce", "--every", "0s"), "--every 0s is too short"),
    (("produce", "--every", "0.2s"), "--every 0.2s is too short"),
    (("produce", "--start", "2026-11-01 00:00:00"), "replaced by `ordertrack backfill"),
    (("backfill", "-t", "uni_tracking_spath", "--from", "2026-11-02 00:00:00", "--to", "2026-11-01 00:00:00"),
     "is not before --to"),
    (("backfill", "-t", "uni_tracking_spath", "--from", "2026-11-01 00:00:00", "--to", "2026-11-01 00:00:00"),
     "is not before --to"),
    (("backfill", "-t", "uni_tracking_spath", "--from", "2026-11-01", "--to", "2026-11-02", "--chunk", "0s"),
     "--chunk 0s is too short"),
    (("replay", "-t", "uni_tracking_spath", "--from-offset", "x:1"), "--from-offset"),
    (("consume", "--max-batch-age", "0s"), "--max-batch-age 0s is too short"),
    (("watermarks", "set", "--table", "ecs_order_info", "--at", "2099-01-01 00:00:00"), "is in the future"),
    (("exceptions", "resolve", "--table", "nosuch", "--type", "stale_watermark", "--note", "x"), "unknown table 'nosuch'"),
])
def test_nonsense_input_is_one_sentence_and_exit_2(tmp_path, args, needle):
    # Services that are not there: on a build that accepted the input, the command would hang or
    # fail later, and for another reason.
    r = cli(*args, timeout=30, KAFKA_BOOTSTRAP_SERVERS=NOWHERE, MYSQL_HOST="127.0.0.1", MYSQL_PORT="1",
            MYSQL_UNIX_SOCKET="", WAREHOUSE_URL=f"duckdb:///{tmp_path}/w.duckdb")
    assert_one_sentence(r, 2, needle)


@pytest.mark.parametrize("args", [("exceptions", "list", "--limit", "0"), ("produce", "--metrics-port", "0"),
                                  ("consume", "--metrics-port", "70000")])
def test_out_of_range_numbers_are_usage_errors(args):
    r = cli(*args, timeout=30, KAFKA_BOOTSTRAP_SERVERS=NOWHERE)
    assert r.returncode == 2 and "Invalid value" in r.stderr and "Traceback" not in r.stderr


# -- item 7: which settings a command used ----------------------------------------------------------

def test_a_command_on_built_in_defaults_says_so_once_and_creates_no_warehouse(tmp_path):
    r = cli("lag", cwd=tmp_path, env=bare_env(), timeout=60)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, r.stderr
    assert "built-in defaults" in warnings[0] and "127.0.0.1:9092" in warnings[0] and "WAREHOUSE_URL" in warnings[0]
    assert str(tmp_path / ".stack" / ".env") in warnings[0]
    assert_one_sentence(r, 4, "no DuckDB warehouse", "built-in default")
    assert not (tmp_path / ".stack").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [("lag",), ("exceptions", "list"), ("ledger", "show"), ("scheduler", "runs"),
                                  ("dq", "run", "--check", "alignment")])
def test_read_only_commands_never_create_the_default_warehouse(tmp_path, args):
    r = cli(*args, cwd=tmp_path, env=bare_env(KAFKA_BOOTSTRAP_SERVERS=NOWHERE))
    assert_one_sentence(r, 4, "no DuckDB warehouse")
    assert not (tmp_path / ".stack" / "warehouse.duckdb").exists()


@pytest.mark.parametrize("args", [("exceptions", "list"), ("ledger", "show"), ("scheduler", "runs")])
def test_read_only_commands_never_create_a_configured_warehouse_either(tmp_path, args):
    path = tmp_path / "w.duckdb"
    r = cli(*args, WAREHOUSE_URL=f"duckdb:///{path}")
    assert_one_sentence(r, 4, f"no DuckDB warehouse at {path}", "WAREHOUSE_URL")
    assert not path.exists()


def test_configured_settings_bring_no_warning(tmp_path):
    (tmp_path / ".env").write_text(f"MYSQL_HOST=127.0.0.1\nKAFKA_BOOTSTRAP_SERVERS={NOWHERE}\n"
                                   f"WAREHOUSE_URL=duckdb:///{tmp_path}/w.duckdb\n")
    r = cli("exceptions", "list", cwd=tmp_path, env=bare_env())
    assert "warning:" not in r.stderr
    assert_one_sentence(r, 4, "no DuckDB warehouse")


# -- item 8: librdkafka's lines --------------------------------------------------------------------

@pytest.fixture
def warehouse(tmp_path) -> str:
    from ordertrack.warehouse.duckdb_engine import DuckDBEngine

    DuckDBEngine(tmp_path / "w.duckdb")
    return f"duckdb:///{tmp_path / 'w.duckdb'}"


def test_kafka_away_prints_no_raw_librdkafka_lines_only_the_sentence(warehouse):
    # MYSQL_HOST set: without a stack's .env the built-in defaults' warning would be a second line.
    r = cli("lag", KAFKA_BOOTSTRAP_SERVERS=NOWHERE, WAREHOUSE_URL=warehouse, MYSQL_HOST="127.0.0.1")
    assert "%3|" not in r.stderr and "|FAIL|" not in r.stderr, r.stderr
    assert_one_sentence(r, 4, "Kafka")
    assert r.stderr.strip() == errors(r)[0], r.stderr


def test_librdkafka_lines_are_debug_events_without_repeats(warehouse):
    r = cli("--log-level", "DEBUG", "lag", KAFKA_BOOTSTRAP_SERVERS=NOWHERE, WAREHOUSE_URL=warehouse,
            ORDERTRACK_LOG_FORMAT="json")
    assert "%3|" not in r.stderr
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    routed = [e for e in events if e["event"] in ("kafka.client.log", "kafka.client.error")]
    assert routed and {e["level"] for e in routed} == {"debug"}, routed
    fails = [e for e in routed if e.get("facility") == "FAIL"]
    assert len(fails) == 1 and "Connection refused" in fails[0]["message"], fails
    assert_one_sentence(r, 4, "Kafka")
