"""The SQL only Redshift runs (the landing itself is shared: `ordertrack.warehouse.landing`):
its table layout, COPY, column widening and VACUUM, as pure functions returning statements."""

from __future__ import annotations

from ordertrack.identifiers import quote_ansi as q
from ordertrack.identifiers import validate_identifier
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import META_COLUMNS
from ordertrack.warehouse.types import Column


def _lit(value: str) -> str:
    """A string literal. Only config-derived, validated text reaches here (topic names, S3 URIs)."""
    return "'" + value.replace("'", "''") + "'"


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


def copy_parquet(table: str, manifest_uri: str, iam_role: str) -> str:
    """Load a stage table from the Parquet file a manifest names (columns by position)."""
    validate_identifier(table)
    return f"COPY {q(table)} FROM {_lit(manifest_uri)} IAM_ROLE {_lit(iam_role)} FORMAT AS PARQUET MANIFEST"


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
