"""`ordertrack.status` without services: verdicts, exit codes, what is skipped when a service is
away, secrets kept out. Warehouse reads run against a DuckDB file in tmp_path (embedded, fast)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

import orjson
import pytest

from ordertrack.config import load_pipeline_config
from ordertrack.errors import ConfigError, ServiceUnavailableError, TransientError
from ordertrack.preflight.findings import Finding, error, unreachable, warning
from ordertrack.status import (
    JobStatus,
    Readings,
    RunningWork,
    ServiceStatus,
    StatusInputs,
    build_tables,
    gather,
    lag_by_table,
    other_exceptions,
    published_since,
    read_jobs,
    read_ledger,
    read_open_exceptions,
    redacted,
    services_from_findings,
)
from ordertrack.tables import TableRegistry
from ordertrack.warehouse.duckdb_engine import DuckDBEngine
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, JOB_RUNS_TABLE, LEDGER_TABLE
from ordertrack.watermarks.model import Watermark

NOW = 1_800_000_000.0
CONFIG = load_pipeline_config()
CFG = CONFIG.dq  # limits: watermark 30 min, lag 100000 messages / 30 min
SPECS = list(TableRegistry(CONFIG))
NAMES = [s.name for s in SPECS]
WHERE = {"source": "MySQL h:1", "kafka": "Kafka k:1", "warehouse": "duckdb:///w"}
JOBS = ("retention", "merge")


def mark(table: str, age_minutes: float, **kw) -> Watermark:
    return Watermark(table=table, position=int(NOW - age_minutes * 60), status=kw.pop("status", "committed"),
                     written_at=kw.pop("written_at", NOW - 30), **kw)


def fresh_marks() -> dict[str, Watermark]:
    return {t: mark(t, 5, row_count=10, window_id=f"w-{t}", window_start=int(NOW - 900)) for t in NAMES}


def up() -> list[ServiceStatus]:
    return [ServiceStatus(s, WHERE[s], True) for s in ("source", "kafka", "warehouse")]


@dataclass
class Calls:
    """Which inputs `gather` asked (a section whose service is down must not be asked)."""

    names: list[str]

    def record(self, name: str, value):
        def call(*_args):
            self.names.append(name)
            if isinstance(value, Exception):
                raise value
            return value
        return call


def inputs(calls: Calls, *, services=None, latest=None, history=(), lag=None, warehouse=None, **kw) -> StatusInputs:
    return StatusInputs(
        services=lambda: services or up(),
        latest_watermarks=calls.record("latest", fresh_marks() if latest is None else latest),
        watermark_history=calls.record("history", history if isinstance(history, Exception) else list(history)),
        warehouse=calls.record("warehouse", warehouse),
        lag=calls.record("lag", {t: (0, 0.0) for t in NAMES} if lag is None else lag),
        **kw,
    )


# -- services -------------------------------------------------------------------------------------

def test_a_service_is_down_when_it_did_not_answer_or_refused_the_connection_and_other_findings_are_problems():
    findings: list[Finding] = [
        unreachable("kafka", "kafka.connect", "Kafka at k:1 did not answer within 10s."),
        error("source", "source.connect", "MySQL at h:1 refused user 'ordertrack': check MYSQL_USER and MYSQL_PASSWORD."),
        warning("warehouse", "warehouse.connect", "The DuckDB warehouse w stayed locked by another process for 5 s."),
        error("warehouse", "warehouse.url", "target.type is redshift but WAREHOUSE_URL is a duckdb URL."),
    ]
    source, kafka, warehouse = services_from_findings(findings, WHERE)
    assert (kafka.reachable, kafka.error) == (False, "Kafka at k:1 did not answer within 10s.")
    assert not source.reachable and "refused user" in source.error
    # A worker holding the DuckDB file is busy, not away.
    assert warehouse.reachable and warehouse.error is None and len(warehouse.problems) == 2
    assert warehouse.problems[0].startswith("warning: The DuckDB warehouse w stayed locked")


def test_a_missing_topic_is_a_problem_of_a_reachable_kafka():
    (_, kafka, _) = services_from_findings(
        [error("kafka", "kafka.topic", "Kafka topic t.w does not exist: run `ordertrack topics create`.", "t.w")], WHERE)
    assert kafka.reachable and kafka.problems == ("error: Kafka topic t.w does not exist: run `ordertrack topics create`.",)


# -- pure parts -----------------------------------------------------------------------------------

def test_published_last_hour_sums_the_tables_live_windows_only():
    history = [
        mark("ecs_order_info", 50, row_count=7, written_at=NOW - 3000),
        mark("ecs_order_info", 10, row_count=5, written_at=NOW - 600),
        mark("ecs_order_info", 90, row_count=1000, written_at=NOW - 4000),  # older than an hour
        mark("ecs_order_info", 20, row_count=300, status="backfill"),  # never the live position
        mark("uni_tracking_info", 10, row_count=99),
    ]
    assert published_since(history, "ecs_order_info", NOW - 3600) == 12
    assert published_since(history, "uni_tracking_spath", NOW - 3600) == 0


def test_lag_by_table_adds_messages_and_keeps_the_oldest_minutes():
    @dataclass
    class P:
        table: str
        lag_messages: int
        lag_minutes: float

    assert lag_by_table([P("a", 3, 1.5), P("a", 4, 0.5), P("b", 0, 0.0)]) == {"a": (7, 1.5), "b": (0, 0.0)}


def test_every_limit_kept_is_fresh_and_each_breach_is_named():
    lag = {t: (0, 0.0) for t in NAMES} | {"uni_tracking_info": (150_000, 2.0)}
    latest = fresh_marks() | {"uni_tracking_spath": mark("uni_tracking_spath", 45)}
    got = Readings(latest=latest, history=[], lag=lag, ledger={}, exceptions={})
    tables = {t.table: t for t in build_tables(SPECS, NOW, CFG, got)}
    assert tables["ecs_order_info"].freshness.verdict == "fresh"
    assert tables["ecs_order_info"].watermark_age_minutes == 5.0
    assert tables["uni_tracking_info"].freshness.verdict == "stale"
    assert "consumer lag 150000 messages" in tables["uni_tracking_info"].freshness.problems[0]
    assert tables["uni_tracking_spath"].freshness.problems == ("watermark 45.0 minutes behind now (limit 30)",)


def test_a_table_never_published_is_stale_but_unread_watermarks_are_unknown():
    never = Readings(latest={}, history=[], lag={t: (0, 0.0) for t in NAMES})
    (t, *_) = build_tables(SPECS, NOW, CFG, never)
    assert t.freshness.verdict == "stale" and "never published" in t.freshness.problems[0]
    unread = Readings(latest=None, history=None, lag={t: (0, 0.0) for t in NAMES},
                      unavailable={"watermarks": "Kafka is unreachable."})
    (t, *_) = build_tables(SPECS, NOW, CFG, unread)
    assert t.freshness.verdict == "unknown"
    assert t.freshness.unchecked == ("watermark: Kafka is unreachable.",)
    assert (t.watermark, t.published_last_hour, t.last_window) == (None, None, None)


def test_a_binlog_table_has_no_watermark_and_is_judged_by_lag_and_its_connector():
    specs = [replace(SPECS[0], strategy="debezium"), SPECS[1]]
    lag = {t: (0, 0.0) for t in NAMES}
    for connector, verdict in (("running", "fresh"), ("connector c failed: boom", "stale"),
                               ("not checked", "unknown"), ("not checked: Kafka Connect did not answer", "unknown")):
        got = Readings(latest=fresh_marks(), history=[], lag=lag, connector=connector)
        binlog, polled = build_tables(specs, NOW, CFG, got)
        assert (binlog.freshness.verdict, binlog.freshness.connector) == (verdict, connector), connector
        assert binlog.watermark is None and binlog.published_last_hour is None and binlog.last_window is None
        assert polled.freshness.verdict == "fresh" and polled.freshness.connector is None
        if verdict == "unknown":
            assert binlog.freshness.unchecked == (f"connector {connector}",)


def test_the_last_window_carries_its_hold():
    latest = fresh_marks() | {"ecs_order_info": mark("ecs_order_info", 6, row_count=3, dead_lettered=1,
                                                     hold_seconds=42, hold_reason="open_transaction")}
    got = Readings(latest=latest, history=[], lag={})
    w = build_tables(SPECS, NOW, CFG, got)[0].last_window
    assert (w.rows, w.dead_lettered, w.hold_seconds, w.hold_reason) == (3, 1, 42, "open_transaction")


# -- gathering ------------------------------------------------------------------------------------

def test_all_fresh_exits_0_and_running_work_is_one_entry(tmp_path):
    calls = Calls([])
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    work = RunningWork("backfill", "[2026-11-01 00:00:00, 2026-11-02 00:00:00) chunk 3/24", NOW - 60)
    report = gather(SPECS, JOBS, CFG, inputs(calls, warehouse=engine, running=lambda engine: {"ecs_order_info": [work]}),
                    now=NOW)
    assert report.exit_code == 0 and not report.unavailable
    doc = report.as_dict()
    assert doc["fresh"] is True and doc["exit_code"] == 0
    tables = {t["table"]: t for t in doc["tables"]}
    assert tables["ecs_order_info"]["running"] == [
        {"kind": "backfill", "detail": work.detail, "since_utc": "2027-01-15 07:59:00"}]
    assert tables["uni_tracking_info"]["running"] == []
    assert tables["ecs_order_info"]["ledger"] == {"last_landed_at_utc": None, "last_merged_at_utc": None,
                                                  "unmerged_batches": 0}
    assert [j["job"] for j in doc["scheduler"]["jobs"]] == list(JOBS)
    orjson.dumps(doc)  # one JSON document, as `--json` prints it


def test_kafka_away_skips_what_needs_it_reads_the_rest_and_exits_4(tmp_path):
    calls = Calls([])
    services = [replace(s, reachable=False, error="Kafka at k:1 did not answer within 10s.") if s.service == "kafka"
                else s for s in up()]
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    report = gather(SPECS, JOBS, CFG, inputs(calls, services=services, warehouse=engine), now=NOW)
    assert calls.names == ["warehouse"]  # no watermark, history or lag read was even tried
    assert report.exit_code == 4
    assert report.unreachable == ["Kafka at k:1 did not answer within 10s."]
    assert set(report.unavailable) == {"watermarks", "history", "lag", "running"}
    assert report.unavailable["lag"] == "Kafka is unreachable."
    assert all(t.freshness.verdict == "unknown" and t.ledger is not None for t in report.tables)
    assert report.jobs == [JobStatus("retention"), JobStatus("merge")]


def test_a_service_error_while_reading_exits_4_without_calling_a_reachable_service_down():
    calls = Calls([])
    missing = ServiceUnavailableError("The topic t.w does not exist: run `ordertrack topics create`.")
    report = gather(SPECS, JOBS, CFG, inputs(calls, latest=missing, history=missing), now=NOW)
    assert "history" in calls.names  # Kafka answered: the next section still asks it
    assert all(s.reachable for s in report.services)
    assert report.service_errors == [str(missing)] and report.exit_code == 4
    assert report.unavailable["watermarks"] == str(missing)


def test_a_connection_lost_mid_read_marks_its_service_down_so_later_sections_skip_it(tmp_path):
    from confluent_kafka import KafkaError, KafkaException

    calls = Calls([])
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    lost = KafkaException(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    report = gather(SPECS, JOBS, CFG, inputs(calls, latest=lost, warehouse=engine), now=NOW)
    assert calls.names == ["latest", "warehouse"]  # neither history nor lag waited on a broker that is gone
    kafka = report.services[1]
    assert not kafka.reachable and kafka.error.startswith("Kafka did not answer")
    assert report.exit_code == 4 and report.unavailable["lag"] == "Kafka is unreachable."


def test_an_open_transaction_or_a_bug_in_one_section_leaves_the_others(tmp_path):
    calls = Calls([])
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    hidden = TransientError("An open Kafka transaction on t.w hides the newest watermarks.")
    report = gather(SPECS, JOBS, CFG, inputs(calls, latest=hidden, lag=KeyError("oops"), warehouse=engine), now=NOW)
    assert report.unavailable == {"watermarks": str(hidden), "lag": "internal error: KeyError: 'oops'"}
    assert report.exit_code == 1  # nothing away, but no table could be judged fresh
    assert all(t.freshness.verdict == "unknown" and t.ledger is not None for t in report.tables)
    with pytest.raises(KeyError):
        gather(SPECS, JOBS, CFG, inputs(Calls([]), lag=KeyError("oops"), warehouse=engine), now=NOW, raise_bugs=True)


def test_a_warehouse_nothing_landed_in_is_empty_not_away():
    calls = Calls([])
    report = gather(SPECS, JOBS, CFG, inputs(calls, warehouse=None), now=NOW)
    assert report.exit_code == 0
    assert report.services[2].note == "not created yet: nothing has landed"
    assert all(t.ledger.last_landed_at is None and t.open_exceptions == {} for t in report.tables)
    assert report.jobs == [JobStatus("retention"), JobStatus("merge")]


def test_a_warehouse_that_cannot_be_opened_is_down_and_a_bad_url_is_bad_input():
    calls = Calls([])
    held = ServiceUnavailableError("The DuckDB warehouse is held by another process (lock); run again once it is released.")
    report = gather(SPECS, JOBS, CFG, inputs(calls, warehouse=held), now=NOW)
    assert "lag" not in calls.names and report.exit_code == 4
    assert report.services[2].error == str(held)
    assert set(report.unavailable) == {"lag", "ledger", "exceptions", "jobs", "running"} and report.jobs is None
    assert all(t.watermark is not None and t.freshness.verdict == "unknown" for t in report.tables)
    with pytest.raises(ConfigError):
        gather(SPECS, JOBS, CFG, inputs(Calls([]), warehouse=ConfigError("WAREHOUSE_URL scheme 'x' is not supported.")),
               now=NOW)


def test_no_secret_survives_in_either_view():
    secret = "hunter2-secret"
    calls = Calls([])
    services = [replace(s, reachable=False, error=f"Kafka said {secret}") if s.service == "kafka" else s for s in up()]
    report = gather(SPECS, JOBS, CFG, inputs(calls, services=services, warehouse=None), now=NOW)
    clean = redacted(report, [secret, None, "abc"])
    text = orjson.dumps(clean.as_dict()).decode()
    assert secret not in text and "Kafka said ***" in text
    assert clean.unreachable == ["Kafka said ***"] and report.unreachable == [f"Kafka said {secret}"]


# -- warehouse reads ------------------------------------------------------------------------------

def test_ledger_exceptions_and_job_runs_are_read_from_the_warehouse(tmp_path):
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    spec = SPECS[0]
    raw, mart = engine.raw_schema, engine.mart_schema
    engine.query(
        f'INSERT INTO "{raw}"."{LEDGER_TABLE}" (topic, partition, first_offset, last_offset, message_count, landed_rows, '
        "rejected_rows, landed_at, batch_id, merged_at) VALUES "
        "(?, 0, 0, 9, 10, 10, 0, TIMESTAMP '2027-01-15 07:00:00', 'b1', TIMESTAMP '2027-01-15 07:00:01'), "
        "(?, 1, 0, 4, 5, 5, 0, TIMESTAMP '2027-01-15 07:05:00', 'b2', NULL), "
        "(?, 2, 0, 4, 5, 5, 0, TIMESTAMP '2027-01-15 07:05:00', 'b2', NULL)", [spec.topic] * 3)
    engine.query(
        f'INSERT INTO "{mart}"."{EXCEPTIONS_TABLE}" (order_id, exception_type, detected_at, source_table, resolved_at) '
        "VALUES (1, 'dead_letter', now(), 'ecs_order_info', NULL), (2, 'dead_letter', now(), 'ecs_order_info', NULL), "
        "(3, 'dead_letter', now(), 'ecs_order_info', now()), (NULL, 'stale_watermark', now(), 'retired_table', NULL)")
    engine.query(
        f'INSERT INTO "{raw}"."{JOB_RUNS_TABLE}" (run_id, job, scheduled_for, started_at, finished_at, status, error) '
        "VALUES ('r1', 'merge', TIMESTAMP '2027-01-15 06:50:00', TIMESTAMP '2027-01-15 06:50:01', "
        "TIMESTAMP '2027-01-15 06:50:02', 'success', NULL), ('r2', 'merge', TIMESTAMP '2027-01-15 07:00:00', "
        "TIMESTAMP '2027-01-15 07:00:01', TIMESTAMP '2027-01-15 07:00:09', 'failed', 'boom')")
    ledger = read_ledger(engine, SPECS[:2])
    utc = lambda text: datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()  # noqa: E731
    assert ledger["ecs_order_info"].last_landed_at == utc("2027-01-15 07:05:00")
    assert ledger["ecs_order_info"].last_merged_at == utc("2027-01-15 07:00:01")
    assert ledger["ecs_order_info"].unmerged_batches == 1  # one batch over two partitions
    assert ledger["uni_tracking_info"].last_landed_at is None
    opened = read_open_exceptions(engine)
    assert opened == {"ecs_order_info": {"dead_letter": 2}, "retired_table": {"stale_watermark": 1}}
    assert other_exceptions(opened, NAMES) == {"retired_table: stale_watermark": 1}  # kept, not dropped
    merge, retention = read_jobs(engine, ["merge", "retention"])
    assert (merge.status, merge.error) == ("failed", "boom") and retention == JobStatus("retention")
    got = Readings(latest=fresh_marks(), history=[], lag={}, ledger=ledger, exceptions=opened)
    assert build_tables(SPECS, NOW, CFG, got)[0].open_exceptions == {"dead_letter": 2}
