"""Read-only questions to the source: row counts and cursor ranges."""

from __future__ import annotations

from ordertrack.identifiers import quote_mysql
from ordertrack.settings import MySQLSettings
from ordertrack.source.connection import connect, one_row
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc


def table_counts(cfg: MySQLSettings, specs: list[TableSpec]) -> list[dict]:
    """Per table: row count and the min/max of its cursor column (unix seconds and UTC)."""
    out = []
    with connect(cfg) as conn, conn.cursor() as cur:
        for s in specs:
            c = quote_mysql(s.cursor_column)
            cur.execute(
                f"SELECT COUNT(*), MIN({c}), MAX({c}) FROM {quote_mysql(s.database)}.{quote_mysql(s.name)}"
            )
            n, lo, hi = one_row(cur)
            out.append(
                {"table": s.name, "rows": int(n), "min_cursor": lo, "max_cursor": hi,
                 "min_cursor_utc": format_utc(lo), "max_cursor_utc": format_utc(hi)}
            )
    return out
