"""The Redshift engine without a cluster: the statements a landing sends, recorded by a stand-in
connection, parse back in Redshift's dialect with every parameter bound; its S3 staging half runs
against moto's S3 server. Nothing here proves the SQL on a real cluster."""

from __future__ import annotations

import dataclasses
import io
import re
import uuid
from decimal import Decimal

import orjson
import pyarrow.parquet as pq
import pytest
import sqlglot
from pydantic import SecretStr
from redshift_connector.core import convert_paramstyle
from sqlglot import exp

from consumers.staging import RawMessage, stage
from ordertrack.config import load_pipeline_config
from ordertrack.settings import load_settings
from ordertrack.tables import TableRegistry
from ordertrack.warehouse import redshift_sql as sql
from ordertrack.warehouse.catalog import catalog_ddl
from ordertrack.warehouse.types import Column
from ordertrack.watermarks.s3_files import s3_client

REGISTRY = TableRegistry(load_pipeline_config())
SPATH = REGISTRY.get("uni_tracking_spath")
COLUMNS = {"id": "BIGINT", "order_id": "BIGINT", "traceSeq": "BIGINT", "pathTime": "BIGINT",
           "event_code": "VARCHAR(128)", "weight": "DECIMAL(10,3)", "_kafka_offset": "BIGINT"}


def parse(statement: str) -> exp.Expression:
    tree = sqlglot.parse_one(statement, read="redshift")
    assert tree is not None
    return tree


class Recorder:
    """A redshift_connector connection and cursor that record every statement and its parameters
    and answer the landing's reads: the statement sequence is what a cluster would be sent."""

    def __init__(self, positions=(), counts=(3, 2), rejects=((0, 2, "key column(s) order_id, traceSeq missing or NULL"),)):
        self.sent: list[tuple[str, dict | None]] = []
        self.bound: list[tuple[str, list]] = []
        self.copied: list[tuple[dict, bytes]] = []
        self.answers = {"SELECT partition, resume, hole_next": list(positions),
                        "SELECT COUNT(*), SUM(": [counts], "SELECT _partition, _offset, _reason": list(rejects)}
        self.autocommit = False
        self.description = None
        self.paramstyle = "format"

    def cursor(self):
        return self

    def execute(self, statement, params=None):
        self.sent.append((statement, params))
        if params:  # what redshift_connector does with a pyformat statement before it sends it
            converted, make_args = convert_paramstyle("pyformat", statement)
            self.bound.append((converted, make_args(params)))
        if statement.startswith("COPY"):  # the staged files exist while the transaction runs
            client = s3_client(load_settings().s3)
            bucket, key = statement.split("'")[1][5:].split("/", 1)
            manifest = orjson.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            [entry] = manifest["entries"]
            data = client.get_object(Bucket=bucket, Key=entry["url"][5:].split("/", 1)[1])["Body"].read()
            self.copied.append((entry, data))
        found = [rows for head, rows in self.answers.items() if statement.startswith(head)]
        self._rows = found[0] if found else []
        self.description = [("c",)] if found else None

    def fetchall(self):
        return self._rows

    def close(self):
        pass


@pytest.fixture
def recorded(monkeypatch, moto_s3):
    """A RedshiftEngine whose cluster is a Recorder, its S3 staging moto's server."""
    import redshift_connector

    from ordertrack.warehouse.redshift_engine import RedshiftEngine

    conn = Recorder()
    monkeypatch.setattr(redshift_connector, "connect", lambda **kw: conn)
    s = load_settings()
    settings = s.model_copy(update={"warehouse": s.warehouse.model_copy(update={
        "url": "redshift://cluster.example:5439/dev", "user": "loader", "password": SecretStr("pw-secret"),
        "s3_staging": f"s3://{moto_s3}/stage/", "iam_role": "arn:aws:iam::123456789012:role/copy"})})
    engine = RedshiftEngine(settings, "settlement_public", "settlement_ods")
    engine.raw_columns = lambda spec: {"order_id": "BIGINT", "traceSeq": "BIGINT", "pathTime": "BIGINT",
                                       "weight": "DECIMAL(10,3)", "_kafka_offset": "BIGINT"}
    engine._connect()
    return engine, conn


@pytest.fixture
def moto_s3():
    settings = load_settings()
    client = s3_client(settings.s3)
    bucket = f"stage-{uuid.uuid4().hex[:8]}"
    try:
        client.create_bucket(Bucket=bucket)
    except Exception as exc:  # moto not running
        from tests.conftest import service_missing

        service_missing(f"S3 (moto) at {settings.s3.endpoint_url_s3}: {exc}")
    return bucket


def _messages():
    rows = [{"order_id": 1, "traceSeq": 1, "pathTime": 1_800_000_000, "weight": "1.250"},
            {"order_id": 2, "traceSeq": 1, "pathTime": 1_800_000_001, "weight": 2},
            {"order_id": 3, "pathTime": 1_800_000_002}]
    return [RawMessage(0, i, orjson.dumps(r), "w1") for i, r in enumerate(rows)]


@pytest.mark.integration
def test_a_landing_sends_the_shared_statements_with_every_parameter_bound(recorded):
    engine, conn = recorded
    # Sessions keep identifier case (`pathTime`, not `pathtime`) and time out stuck statements.
    assert [t for t, _ in conn.sent[:3]] == ["SET enable_case_sensitive_identifier TO true", "SET timezone TO 'UTC'",
                                             "SET statement_timeout TO 900000"]
    conn.sent.clear()
    result = engine.land(SPATH, SPATH.topic, stage(_messages()))
    sent = [t for t, _ in conn.sent]
    assert sent[0] == "BEGIN" and sent[-1] == "COMMIT"
    for text, params in conn.sent:
        if text not in ("BEGIN", "COMMIT"):
            parse(re.sub(r"%\((\w+)\)s", r"'\1'", text))
        # Every parameter is bound the driver's way: nothing like `:batch_id` reaches the cluster.
        assert not re.search(r"(?<![:\w]):[a-z_]+\b", re.sub(r"'[^']*'", "", text)), text
        assert set(re.findall(r"%\((\w+)\)s", text)) <= set(params or {}), text
    # Every statement with parameters goes through the driver's own pyformat conversion.
    assert len(conn.bound) == len([p for _, p in conn.sent if p]) and all("$1" in t for t, _ in conn.bound)
    create, copy = sent[2], sent[3]
    assert create.startswith('CREATE TEMP TABLE "ordertrack_stage" (') and '"pathTime" BIGINT' in create
    assert copy.startswith('COPY "ordertrack_stage" FROM \'s3://') and copy.endswith(
        "IAM_ROLE 'arn:aws:iam::123456789012:role/copy' FORMAT AS PARQUET MANIFEST")
    insert = next(t for t in sent if t.startswith('INSERT INTO "settlement_public"."uni_tracking_spath_raw"'))
    assert '"pathTime"' in insert and "pathtime" not in insert
    assert (result.landed, result.skipped, [r["offset"] for r in result.rejected]) == (2, 0, [2])


@pytest.mark.integration
def test_the_copy_manifest_names_the_typed_parquet_file_with_its_length_and_both_go_once_landed(recorded):
    engine, conn = recorded
    engine.land(SPATH, SPATH.topic, stage(_messages()))
    [(entry, body)] = conn.copied
    assert entry["mandatory"] and entry["meta"]["content_length"] == len(body)
    table = pq.read_table(io.BytesIO(body))
    assert table.column_names[:6] == ["_partition", "_offset", "_window_id", "_reason", "_order_id", "_declared"]
    assert str(table.schema.field("weight").type) == "decimal128(10, 3)"
    assert table.column("weight").to_pylist()[:2] == [Decimal("1.250"), Decimal("2.000")]
    # Once the transaction has ended the staged files are gone (they hold the batch's rows).
    client = s3_client(load_settings().s3)
    bucket, key = entry["url"][5:].split("/", 1)
    assert client.list_objects_v2(Bucket=bucket, Prefix=key.rsplit("/", 1)[0]).get("KeyCount", 0) == 0


@pytest.mark.integration
def test_the_ledger_and_the_exceptions_go_where_every_engine_puts_them(recorded):
    """The ledger lives in the target's raw schema (where `next_offsets` reads it), whatever the
    table's own schema; a rejected row names its order and is never opened twice."""
    engine, conn = recorded
    spec = dataclasses.replace(SPATH, raw_schema="elsewhere")
    engine.land(spec, spec.topic, stage(_messages()))
    sent = [t for t, _ in conn.sent]
    [ledger] = [t for t in sent if t.startswith("INSERT INTO") and "\"ordertrack_ingest_ledger\" (topic" in t]
    assert ledger.startswith('INSERT INTO "settlement_public"."ordertrack_ingest_ledger"')
    [exceptions] = [t for t in sent if t.startswith("INSERT INTO") and "\"order_tracking_exceptions\" (order_id" in t]
    assert "f._order_id" in exceptions and "NOT EXISTS" in exceptions and "resolved_at IS NULL" in exceptions


@pytest.mark.integration
def test_mark_merged_binds_its_batch_id(recorded):
    engine, conn = recorded
    conn.sent.clear()
    engine.in_transaction(lambda session: engine.mark_merged(session, "ab" * 16))
    [(text, params)] = [(t, p) for t, p in conn.sent if t.startswith("UPDATE")]
    assert "%(batch_id)s" in text and params["batch_id"] == "ab" * 16


def test_ddl_parses_and_keeps_distribution_keys():
    for stmt in catalog_ddl("settlement_public", "settlement_ods"):
        parse(stmt)
    create = sql.create_raw_table(SPATH, [Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT")])
    assert "DISTKEY(\"order_id\")" in create and "SORTKEY(_ingested_at)" in create
    parse(create)
    parse(sql.add_column(SPATH, Column("priority", "INTEGER")))


def test_literals_are_escaped():
    copy = sql.copy_parquet("ordertrack_stage", "s3://b/it's.manifest", "arn:x")
    assert "'s3://b/it''s.manifest'" in copy
    parse(copy)


def test_ensure_raw_table_adds_only_missing_columns_and_widens_varchars_outside_the_merge():
    """With case-sensitive identifiers the catalog says `traceSeq`: no second ADD COLUMN; a VARCHAR
    the source widened is widened in raw, the mart and history in autocommit (not in the merge's
    transaction)."""
    from ordertrack.warehouse.redshift_engine import RedshiftEngine

    engine = object.__new__(RedshiftEngine)  # no cluster: the catalog is played by the stub below
    run: list[str] = []
    engine.raw_columns = lambda spec: {"order_id": "BIGINT", "traceSeq": "BIGINT", "location": "VARCHAR(512)"}

    def query(statement, params=None):
        run.append(statement)
        if "information_schema.columns" in statement:
            return [("mart_uni_tracking_spath", "character varying", 512, None, None),
                    ("hist_uni_tracking_spath_2026_h1", "character varying", 4096, None, None)]
        return []

    engine.query = query
    added = engine.ensure_raw_table(SPATH, [Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT"),
                                            Column("location", "VARCHAR(2048)"), Column("facility", "VARCHAR(256)")])
    assert added == ["facility"]
    alters = [s for s in run if "ALTER COLUMN" in s]
    assert alters == [
        'ALTER TABLE "settlement_public"."uni_tracking_spath_raw" ALTER COLUMN "location" TYPE VARCHAR(2048)',
        'ALTER TABLE "settlement_ods"."mart_uni_tracking_spath" ALTER COLUMN "location" TYPE VARCHAR(2048)',
    ]  # the history table already holds 4096
    for s in alters:
        parse(s)


def test_a_decimal_or_integer_the_source_widened_is_widened_by_copy_in_one_transaction():
    """Redshift alters only VARCHAR lengths in place: a wider DECIMAL or INT -> BIGINT moves the
    values to a new column that takes the old name, raw, mart and history alike, each table in one
    transaction; a DISTKEY/SORTKEY column (which cannot be dropped) is left to the dead letters."""
    from ordertrack.warehouse.redshift_engine import RedshiftEngine

    orders = REGISTRY.get("ecs_order_info")
    engine = object.__new__(RedshiftEngine)  # no cluster: the catalog is played by the stub below
    autocommit: list[str] = []
    transactions: list[list[str]] = []
    engine.raw_columns = lambda spec: {"order_id": "INTEGER", "order_amount": "DECIMAL(12,2)", "note": "VARCHAR(64)"}

    def query(statement, params=None):
        autocommit.append(statement)
        if "information_schema.columns" in statement:
            column = params[1]
            if column == "order_amount":
                return [("mart_ecs_order_info", "numeric", None, 12, 2),
                        ("hist_ecs_order_info_2026_h1", "numeric", None, 14, 3)]  # already wide enough
            return [("mart_ecs_order_info", "integer", None, 32, 0)]
        if "pg_attribute" in statement:
            return [("order_id",)]  # the DISTKEY of raw and of the mart
        return []

    def in_transaction(fn):
        run: list[str] = []
        transactions.append(run)
        return fn(lambda statement, params: run.append(statement))

    engine.query, engine.in_transaction = query, in_transaction
    added = engine.ensure_raw_table(orders, [Column("order_id", "BIGINT"), Column("order_amount", "DECIMAL(14,3)"),
                                             Column("note", "VARCHAR(64)")])
    assert added == []
    raw, mart = '"settlement_public"."ecs_order_info_raw"', '"settlement_ods"."mart_ecs_order_info"'
    assert transactions == [[
        f'ALTER TABLE {t} ADD COLUMN "order_amount__widened" DECIMAL(14,3)',
        f'UPDATE {t} SET "order_amount__widened" = "order_amount"',
        f'ALTER TABLE {t} DROP COLUMN "order_amount"',
        f'ALTER TABLE {t} RENAME COLUMN "order_amount__widened" TO "order_amount"',
    ] for t in (raw, mart)]
    assert not any("ALTER COLUMN" in s or "order_id" in s and "ALTER" in s for s in autocommit)  # the DISTKEY stays
    for run in transactions:
        for s in run:
            parse(s)
    parse(sql.key_columns().replace("%s", "'x'"))


@pytest.mark.integration
def test_a_failed_merge_lands_the_batch_unmerged_on_redshift_as_everywhere(recorded):
    """The lander's policy, not the engine's: the merge's failure rolls back the whole batch, which
    then lands again without the merge, marked unmerged."""
    from consumers.lander import Lander

    engine, conn = recorded
    conn.answers["SELECT _partition, _offset, _reason"] = []

    def broken(execute, spec, batch_id):
        raise RuntimeError("merge bug")

    conn.sent.clear()
    result = Lander(engine, load_pipeline_config(), load_settings(), after_landing=broken).land(SPATH, _messages())
    sent = [t for t, _ in conn.sent]
    assert [t for t in sent if t in ("BEGIN", "ROLLBACK", "COMMIT")] == ["BEGIN", "ROLLBACK", "BEGIN", "COMMIT"]
    ledgers = [p for t, p in conn.sent if t.startswith("INSERT INTO") and "\"ordertrack_ingest_ledger\" (topic" in t]
    assert [p["merged"] for p in ledgers] == [True, False]
    assert result.merge_error == "RuntimeError: merge bug" and not result.merged
