"""The SQL the Redshift engine runs, as pure functions returning statements (snapshot-testable).

A landing, in one transaction: COPY the staged Parquet file into a temp table, then append the
new, valid rows to the raw table, record rejects in the exceptions table and the offset ranges
in the ledger. JSON is parsed by Redshift (`JSON_EXTRACT_PATH_TEXT`), as DuckDB does with
`json_transform` in the embedded engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from ordertrack.identifiers import quote_ansi as q
from ordertrack.identifiers import validate_identifier
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, JOB_RUNS_TABLE, LEDGER_TABLE, META_COLUMNS
from ordertrack.warehouse.positions import advance_holes, lands, positions_relation, replaced_rows, replays_ddl
from ordertrack.warehouse.types import Column


def _lit(value: str) -> str:
    """A string literal. Only config-derived, validated text reaches here (topic names, S3 URIs)."""
    return "'" + value.replace("'", "''") + "'"


def catalog_ddl(raw_schema: str, mart_schema: str) -> list[str]:
    return [
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


def vacuum_statements(specs: list[TableSpec]) -> list[str]:
    """What the old nightly job ran: deleted rows reclaimed on every mart, the orders mart
    (filtered by partner and add time) re-sorted. VACUUM cannot run inside a transaction."""
    out = [f"VACUUM DELETE ONLY {q(s.mart_schema)}.{q(s.mart_table)}" for s in specs]
    out += [f"VACUUM SORT ONLY {q(s.mart_schema)}.{q(s.mart_table)}" for s in specs if s.name == "ecs_order_info"]
    return out


def create_raw_table(spec: TableSpec, columns: list[Column]) -> str:
    cols = ", ".join(f"{q(c.name)} {c.type}" for c in (*columns, *META_COLUMNS))
    # Raw tables are append-only and trimmed by ingestion time: distribute by key, sort by arrival.
    return (f"CREATE TABLE IF NOT EXISTS {q(spec.raw_schema)}.{q(spec.raw_table)} ({cols}) "
            f"DISTKEY({q(spec.key_columns[0])}) SORTKEY(_ingested_at)")


def add_column(spec: TableSpec, column: Column) -> str:
    return f"ALTER TABLE {q(spec.raw_schema)}.{q(spec.raw_table)} ADD COLUMN {q(column.name)} {column.type}"


def open_holes(raw_schema: str, topic: str) -> str:
    """A row when a replay's hole is open on the topic (landing then replaces re-landed raw rows)."""
    return f"SELECT 1 FROM ({positions_relation(raw_schema, _lit(topic))}) AS p WHERE hole_next IS NOT NULL LIMIT 1"


def next_offsets(raw_schema: str, topic: str) -> str:
    return f"SELECT partition, resume FROM ({positions_relation(raw_schema, _lit(topic))}) AS p"


def alter_varchar(schema: str, table: str, column: str, wtype: str) -> str:
    """Redshift widens a VARCHAR column in place (ALTER COLUMN ... TYPE, VARCHAR only)."""
    validate_identifier(column)
    if not wtype.upper().startswith("VARCHAR("):
        raise ValueError("Redshift alters only VARCHAR lengths in place")
    return f"ALTER TABLE {q(schema)}.{q(table)} ALTER COLUMN {q(column)} TYPE {wtype}"


def widen_by_copy(schema: str, table: str, column: str, wtype: str) -> list[str]:
    """Redshift cannot alter a DECIMAL's or an INTEGER's type: the values move to a new column of
    the wider type, which takes the old one's name. Run as one transaction, so no reader and no
    crash ever sees the column missing. A DISTKEY or SORTKEY column cannot be dropped: the caller
    leaves those to the dead letters."""
    validate_identifier(column)
    target, new = f"{q(schema)}.{q(table)}", q(f"{column}__widened")
    return [
        f"ALTER TABLE {target} ADD COLUMN {new} {wtype}",
        f"UPDATE {target} SET {new} = {q(column)}",
        f"ALTER TABLE {target} DROP COLUMN {q(column)}",
        f"ALTER TABLE {target} RENAME COLUMN {new} TO {q(column)}",
    ]


def key_columns() -> str:
    """The DISTKEY and SORTKEY columns of one table (params: schema, table). From pg_attribute, not
    pg_table_def, which shows only the schemas on the session's search_path."""
    return ("SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND (a.attisdistkey OR a.attsortkeyord <> 0)")


def _extract(column: str, wtype: str, json_key: str | None = None) -> str:
    validate_identifier(column)
    text = f"NULLIF(JSON_EXTRACT_PATH_TEXT(s.value, {_lit(json_key or column)}, TRUE), '')"
    if wtype.upper().startswith("VARCHAR"):
        return text
    return f"CAST({text} AS {wtype})"


@dataclass(frozen=True)
class LandingSql:
    """One landing transaction: `writes` (BEGIN, stage, COPY, raw rows, exceptions, ledger), then
    the two reads the engine reports from, then (after the merge hook) `commit`."""

    writes: list[str]
    rejects: str
    """partition, offset, reason, value of each rejected message."""
    counts: str
    """Messages new to the ledger, and how many of them landed."""
    commit: str = "COMMIT"

    @property
    def statements(self) -> list[str]:
        return [*self.writes, self.rejects, self.counts, self.commit]


def land_statements(
    spec: TableSpec,
    columns: dict[str, str],
    topic: str,
    s3_uri: str,
    iam_role: str,
    *,
    mart_schema: str,
    batch_id: str,
    merged: bool = False,
    stage_table: str = "ordertrack_stage",
    json_keys: dict[str, str] | None = None,
    declared: list[int] | None = None,
    holes: bool = False,
) -> LandingSql:
    """The statements of one landing transaction. Redshift's catalog folds column names to lower
    case while JSON keys keep theirs (`traceSeq`): `json_keys` maps a lower-cased column name to
    the key the messages carry."""
    json_keys = json_keys or {}
    validate_identifier(stage_table)
    raw = f"{q(spec.raw_schema)}.{q(spec.raw_table)}"
    ledger = f"{q(spec.raw_schema)}.{q(LEDGER_TABLE)}"
    source_cols = [c for c in columns if not c.startswith("_")]
    key_missing = " OR ".join(
        f"NULLIF(JSON_EXTRACT_PATH_TEXT(s.value, {_lit(k)}, TRUE), '') IS NULL" for k in spec.key_columns
    )
    fresh = f"{stage_table}_fresh"
    if not batch_id.isalnum():
        raise ValueError("batch ids are hex")
    writes = [
        "BEGIN",
        # The engine writes only UTF-8 values into the Parquet file (see `utf8_only`).
        f"CREATE TEMP TABLE {stage_table} (partition INTEGER, \"offset\" BIGINT, window_id VARCHAR(128), "
        f"value VARCHAR(65535), reject_reason VARCHAR(256))",
        f"COPY {stage_table} FROM {_lit(s3_uri)} IAM_ROLE {_lit(iam_role)} FORMAT AS PARQUET",
        # New offsets only (the ledger decides), each once even if repeated in the batch.
        f"""CREATE TEMP TABLE {fresh} AS
            SELECT s.partition, s."offset", s.window_id, s.value,
                   CASE WHEN s.reject_reason IS NOT NULL THEN s.reject_reason
                        WHEN s.value IS NULL OR NOT IS_VALID_JSON(s.value) THEN 'value is not valid JSON'
                        WHEN {key_missing} THEN {_lit(f"key column(s) {', '.join(spec.key_columns)} missing or NULL")}
                   END AS reason
            FROM (
                SELECT b.*, ROW_NUMBER() OVER (PARTITION BY b.partition, b."offset" ORDER BY b."offset") AS n
                FROM {stage_table} b
                LEFT JOIN ({positions_relation(spec.raw_schema, _lit(topic))}) l ON l.partition = b.partition
                WHERE {lands("b", "l", declared or [])}
            ) s
            WHERE s.n = 1""",
        *([replaced_rows(raw, _lit(topic), fresh, positions_relation(spec.raw_schema, _lit(topic)))] if holes else []),
        f"""INSERT INTO {raw} ({", ".join(q(c) for c in source_cols)}, _kafka_topic, _kafka_partition, _kafka_offset, _window_id, _ingested_at, _batch_id)
            SELECT {", ".join(_extract(c, columns[c], json_keys.get(c.lower())) for c in source_cols)},
                   {_lit(topic)}, s.partition, s."offset", s.window_id, GETDATE(), {_lit(batch_id)}
            FROM {fresh} s WHERE s.reason IS NULL""",
        f"""INSERT INTO {q(mart_schema)}.{q(EXCEPTIONS_TABLE)}
            (order_id, exception_type, detected_at, notes, source_table, kafka_topic, kafka_partition, kafka_offset)
            SELECT NULL, 'dead_letter', GETDATE(), s.reason, {_lit(spec.name)}, {_lit(topic)}, s.partition, s."offset"
            FROM {fresh} s WHERE s.reason IS NOT NULL""",
        f"""INSERT INTO {ledger}
            SELECT {_lit(topic)}, partition, MIN("offset"), MAX("offset"), COUNT(*),
                   SUM(CASE WHEN reason IS NULL THEN 1 ELSE 0 END), SUM(CASE WHEN reason IS NULL THEN 0 ELSE 1 END),
                   GETDATE(), {_lit(batch_id)}, {"GETDATE()" if merged else "NULL"}
            FROM {fresh} GROUP BY partition""",
        *([advance_holes(spec.raw_schema, _lit(topic), stage_table, "GETDATE()", declared or [])] if holes else []),
    ]
    return LandingSql(
        writes=writes,
        rejects=f'SELECT partition, "offset", reason, value FROM {fresh} WHERE reason IS NOT NULL '
                'ORDER BY partition, "offset"',
        counts=f"SELECT COUNT(*), SUM(CASE WHEN reason IS NULL THEN 1 ELSE 0 END) FROM {fresh}",
    )


def unmerged_batches(raw_schema: str, topic: str) -> str:
    return (f"SELECT batch_id FROM {q(raw_schema)}.{q(LEDGER_TABLE)} WHERE topic = {_lit(topic)} "
            "AND merged_at IS NULL AND batch_id IS NOT NULL GROUP BY batch_id ORDER BY MIN(landed_at), MIN(first_offset)")


def mark_merged(raw_schema: str) -> str:
    return f"UPDATE {q(raw_schema)}.{q(LEDGER_TABLE)} SET merged_at = GETDATE() WHERE batch_id = :batch_id"
