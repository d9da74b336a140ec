"""The source catalog: column names and types of a table, from information_schema."""

from __future__ import annotations

from ordertrack.settings import MySQLSettings
from ordertrack.source.connection import connect
from ordertrack.tables import TableSpec
from ordertrack.warehouse.types import SourceColumn


def source_columns(cfg: MySQLSettings, spec: TableSpec) -> list[SourceColumn]:
    """Columns of the source table in their order; the pipeline user sees tables it can read."""
    with connect(cfg, database="information_schema") as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (spec.database, spec.name),
        )
        return [SourceColumn(n, dt, ct, cl, p, s) for n, dt, ct, cl, p, s in cur.fetchall()]
