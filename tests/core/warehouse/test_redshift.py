"""The Redshift engine without a cluster: its SQL parses back in Redshift's dialect, and its S3
staging half runs against moto's S3 server. Nothing here proves the SQL on a real cluster."""

from __future__ import annotations

import io
import uuid

import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from ordertrack.config import load_pipeline_config
from ordertrack.settings import load_settings
from ordertrack.tables import TableRegistry
from ordertrack.warehouse import redshift_sql as sql
from ordertrack.warehouse.redshift_engine import stage_to_s3, utf8_only
from ordertrack.warehouse.types import Column
from ordertrack.watermarks.s3_files import s3_client
from consumers.staging import RawMessage, stage

REGISTRY = TableRegistry(load_pipeline_config())
SPATH = REGISTRY.get("uni_tracking_spath")
COLUMNS = {"id": "BIGINT", "order_id": "BIGINT", "traceSeq": "BIGINT", "pathTime": "BIGINT",
           "event_code": "VARCHAR(128)", "weight": "DECIMAL(10,3)", "_kafka_offset": "BIGINT"}


def parse(statement: str) -> exp.Expression:
    tree = sqlglot.parse_one(statement, read="redshift")
    assert tree is not None
    return tree


def test_every_landing_statement_parses_in_redshift_dialect():
    stmts = sql.land_statements(SPATH, COLUMNS, "kuaisong.uni_tracking_spath", "s3://b/p/x.parquet",
                                "arn:aws:iam::123456789012:role/copy", mart_schema="settlement_ods",
                                batch_id="0f" * 16).statements
    kinds = [type(parse(s)).__name__ for s in stmts]
    assert kinds[0] == "Transaction" and kinds[-1] == "Commit"
    assert "Copy" in kinds
    insert = parse(stmts[4])
    assert isinstance(insert, exp.Insert)
    assert insert.this.this.name == "uni_tracking_spath_raw"
    # Meta columns are not read from the JSON; source columns are, with their types.
    text = stmts[4]
    assert "JSON_EXTRACT_PATH_TEXT(s.value, 'weight', TRUE)" in text and "AS DECIMAL(10,3)" in text
    assert "'_kafka_offset'" not in text


def test_ddl_parses_and_keeps_distribution_keys():
    for stmt in sql.catalog_ddl("settlement_public", "settlement_ods"):
        parse(stmt)
    create = sql.create_raw_table(SPATH, [Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT")])
    assert "DISTKEY(\"order_id\")" in create and "SORTKEY(_ingested_at)" in create
    parse(create)
    parse(sql.add_column(SPATH, Column("priority", "INTEGER")))
    parse(sql.next_offsets("settlement_public", "kuaisong.uni_tracking_spath"))


def test_literals_are_escaped():
    stmts = sql.land_statements(SPATH, COLUMNS, "t", "s3://b/it's.parquet", "arn:x", mart_schema="m", batch_id="ab").statements
    assert "'s3://b/it''s.parquet'" in stmts[2]
    parse(stmts[2])


@pytest.mark.integration
def test_batches_are_staged_to_s3_as_parquet():
    settings = load_settings()
    client = s3_client(settings.s3)
    bucket = f"stage-{uuid.uuid4().hex[:8]}"
    try:
        client.create_bucket(Bucket=bucket)
    except Exception as exc:  # moto not running
        from tests.conftest import service_missing

        service_missing(f"S3 (moto) at {settings.s3.endpoint_url_s3}: {exc}")
    staged = stage([RawMessage(0, i, b'{"order_id": %d}' % i, "w1") for i in range(1000)] + [RawMessage(1, 5, b"\xff", None)])
    staged = utf8_only(staged)
    uri = stage_to_s3(client, f"s3://{bucket}/landing/", "kuaisong.uni_tracking_spath", staged)
    assert uri.startswith(f"s3://{bucket}/landing/kuaisong.uni_tracking_spath/") and uri.endswith(".parquet")
    body = client.get_object(Bucket=bucket, Key=uri.split("/", 3)[3])["Body"].read()
    back = pq.read_table(io.BytesIO(body))
    assert back.equals(staged)
    assert back.column("reject_reason").to_pylist()[-1] == "value is not UTF-8 text"


def test_mixed_case_keys_meet_redshifts_lower_case_columns():
    """Redshift's catalog says `traceseq` for the column `traceSeq`; the messages say `traceSeq`."""
    from ordertrack.warehouse.redshift_engine import unknown_json_keys

    folded = {"order_id": "BIGINT", "traceseq": "BIGINT", "pathtime": "BIGINT"}
    assert unknown_json_keys({"order_id", "traceSeq", "pathTime", "priority"}, folded) == {"priority"}
    text = sql.land_statements(SPATH, folded, "t", "s3://b/x.parquet", "arn:x", mart_schema="m", batch_id="ab",
                               json_keys={"traceseq": "traceSeq", "pathtime": "pathTime"}).statements[4]
    assert "JSON_EXTRACT_PATH_TEXT(s.value, 'traceSeq', TRUE)" in text
    assert "JSON_EXTRACT_PATH_TEXT(s.value, 'pathTime', TRUE)" in text


def test_ensure_raw_table_meets_folded_names_and_widens_varchars_outside_the_merge():
    """Redshift's catalog says `traceseq` for `traceSeq`: no second ADD COLUMN; a VARCHAR the source
    widened is widened in raw, the mart and history in autocommit (not in the merge's transaction)."""
    from ordertrack.warehouse.redshift_engine import RedshiftEngine

    engine = object.__new__(RedshiftEngine)  # no cluster: the catalog is played by the stub below
    run: list[str] = []
    engine.raw_columns = lambda spec: {"order_id": "BIGINT", "traceseq": "BIGINT", "location": "VARCHAR(512)"}

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
