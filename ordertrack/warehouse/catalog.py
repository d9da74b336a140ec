"""The pipeline's own tables (ledger, replays, job runs, exceptions), in Redshift SQL, created by
every engine at connect (rendered for its dialect)."""

from __future__ import annotations

from ordertrack.identifiers import quote_ansi as q
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, JOB_RUNS_TABLE, LEDGER_TABLE, WarehouseEngine
from ordertrack.warehouse.positions import replays_ddl
from ordertrack.warehouse.sqlfiles import transpile as render
from ordertrack.warehouse.types import catalog_type


def catalog_ddl(raw_schema: str, mart_schema: str, dialect: str = "redshift") -> list[str]:
    statements = [
        f"CREATE SCHEMA IF NOT EXISTS {q(raw_schema)}",
        f"CREATE SCHEMA IF NOT EXISTS {q(mart_schema)}",
        f"CREATE TABLE IF NOT EXISTS {q(raw_schema)}.{q(LEDGER_TABLE)} ("
        "topic VARCHAR(255) NOT NULL, partition INTEGER NOT NULL, first_offset BIGINT NOT NULL, "
        "last_offset BIGINT NOT NULL, message_count INTEGER NOT NULL, landed_rows INTEGER NOT NULL, "
        "rejected_rows INTEGER NOT NULL, landed_at TIMESTAMP NOT NULL, batch_id VARCHAR(32), merged_at TIMESTAMP)",
        f"CREATE TABLE IF NOT EXISTS {q(mart_schema)}.{q(EXCEPTIONS_TABLE)} ("
        "order_id BIGINT, exception_type VARCHAR(64) NOT NULL, detected_at TIMESTAMP NOT NULL, "
        "notes VARCHAR(4096), resolved_at TIMESTAMP, resolution_notes VARCHAR(4096), source_table VARCHAR(128), "
        "kafka_topic VARCHAR(255), kafka_partition INTEGER, kafka_offset BIGINT, resolved_by VARCHAR(128))",
        f"CREATE TABLE IF NOT EXISTS {q(raw_schema)}.{q(JOB_RUNS_TABLE)} ("
        "run_id VARCHAR(32) NOT NULL, job VARCHAR(64) NOT NULL, scheduled_for TIMESTAMP NOT NULL, "
        "started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, status VARCHAR(16) NOT NULL, "
        "figures VARCHAR(65535), error VARCHAR(4096), host VARCHAR(255))",
        replays_ddl(raw_schema, sized=True),
    ]
    return [render(s, dialect) for s in statements]


def table_columns(engine: WarehouseEngine, schema: str, table: str) -> dict[str, str]:
    """Column -> full type (`DECIMAL(p,s)`, `VARCHAR(n)`) of a table, from `information_schema`
    (PostgreSQL and Redshift say `numeric` and `character varying` without them); empty when
    the table does not exist."""
    ph = engine.placeholder
    rows = engine.query(
        "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale "
        f"FROM information_schema.columns WHERE table_schema = {ph} AND table_name = {ph} ORDER BY ordinal_position",
        [schema, table],
    )
    return {n: catalog_type(t, length, precision, scale) for n, t, length, precision, scale in rows}
