"""Checks against the source database, made as the pipeline user with the configured credentials.

Everything about a table is read from `information_schema` (columns, indexes) or with a `LIMIT 0`
query: no check scans a table, so it is safe on a production source of any size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import pymysql

from ordertrack.config import PipelineConfig
from ordertrack.errors import ServiceUnavailableError
from ordertrack.identifiers import quote_mysql
from ordertrack.preflight.findings import Finding, error, unreachable, warning
from ordertrack.settings import Settings
from ordertrack.source.connection import SourceUnreachableError, connect, one_row
from ordertrack.source.mysql_errors import connection_lost, error_text, privilege_missing, syntax_error
from ordertrack.tables import TableRegistry, TableSpec

# Bytes of storage of MySQL's integer types; unix seconds need at least 4 (INT lasts to 2038
# signed, 2106 unsigned).
INTEGER_BYTES = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
UNIX_SECONDS_MIN_BYTES = 4

PROCESS_PROBE = "SELECT 1 FROM information_schema.innodb_trx LIMIT 1"
REPLICA_PROBES = ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS")


class Column(NamedTuple):
    name: str
    data_type: str
    column_type: str


@dataclass(frozen=True)
class SourceTable:
    """What `information_schema` shows the pipeline user of one source table."""

    columns: dict[str, Column]
    """Lower-cased column name -> column: MySQL column names are case-insensitive."""
    unique_indexes: dict[str, tuple[str, ...]]
    """Index name (`PRIMARY` for the primary key) -> its columns in index order."""


def cursor_type_problem(col: Column) -> str | None:
    """Why `col` cannot hold the unix-seconds cursor, or None when it can."""
    size = INTEGER_BYTES.get(col.data_type.lower())
    if size is None:
        return f"is {col.column_type}, not an integer column of unix seconds"
    if size < UNIX_SECONDS_MIN_BYTES:
        return f"is {col.column_type}, too small for unix seconds (use INT UNSIGNED or BIGINT)"
    return None


def covering_unique_index(table: SourceTable, columns: tuple[str, ...]) -> str | None:
    """A unique index whose columns are all among `columns` (so `columns` are unique together),
    preferring the primary key; None when no index guarantees it."""
    wanted = {c.lower() for c in columns}
    names = sorted(table.unique_indexes, key=lambda n: (n != "PRIMARY", n))
    for name in names:
        if {c.lower() for c in table.unique_indexes[name]} <= wanted:
            return name
    return None


def _describe_indexes(table: SourceTable) -> str:
    if not table.unique_indexes:
        return "it has no PRIMARY KEY or UNIQUE index"
    return "its unique indexes are " + "; ".join(
        f"{n} ({', '.join(cols)})" for n, cols in sorted(table.unique_indexes.items(), key=lambda i: i[0] != "PRIMARY")
    )


def table_findings(spec: TableSpec, position: int, table: SourceTable | None, user: str) -> list[Finding]:
    """The problems of one configured table against what the source catalog shows; pure."""
    where = f"tables[{position}]"
    full = spec.source_full_name
    if table is None:
        return [error("source", "source.table",
                      f"Source table {full} does not exist or user {user!r} has no grant on it: create it, "
                      f"correct {where}.full_name, or GRANT SELECT ON {full} TO {user!r}.", spec.name)]
    out: list[Finding] = []
    cursor = table.columns.get(spec.cursor_column.lower())
    if cursor is None:
        candidates = [c.name for c in table.columns.values() if cursor_type_problem(c) is None]
        out.append(error("source", "source.cursor_column",
                         f"Source table {full} has no column {spec.cursor_column!r} ({where}.timestamp_column): "
                         f"set it to the table's unix-seconds column (integer columns: "
                         f"{', '.join(candidates) or 'none'}).", spec.name))
    elif (why := cursor_type_problem(cursor)) is not None:
        out.append(error("source", "source.cursor_column",
                         f"Cursor column {full}.{cursor.name} ({where}.timestamp_column) {why}: the producer "
                         "compares it with unix seconds, so set timestamp_column to an integer column holding "
                         "them.", spec.name))
    out += _key_findings(spec, where, table)
    if not spec.binlog:  # keyset pages are the poller's; Debezium reads the binlog
        out += _tie_breaker_findings(spec, where, table, cursor_known=cursor is not None)
    return out


def _missing(table: SourceTable, columns: tuple[str, ...]) -> list[str]:
    return [c for c in columns if c.lower() not in table.columns]


def _key_findings(spec: TableSpec, where: str, table: SourceTable) -> list[Finding]:
    full = spec.source_full_name
    missing = _missing(table, spec.key_columns)
    if missing:
        return [error("source", "source.primary_key",
                      f"Source table {full} has no column {', '.join(map(repr, missing))} ({where}.primary_key): "
                      f"set primary_key to the columns of one of its unique indexes ({_describe_indexes(table)}).",
                      spec.name)]
    if covering_unique_index(table, spec.key_columns) is None:
        cols = ", ".join(spec.key_columns)
        return [error("source", "source.primary_key",
                      f"The key ({cols}) of {full} ({where}.primary_key) is not unique in the source, so the "
                      f"mart would merge different rows into one: {_describe_indexes(table)}; set primary_key "
                      f"to the columns of one of them, or add UNIQUE ({cols}) to the source table.", spec.name)]
    return []


def _tie_breaker_findings(spec: TableSpec, where: str, table: SourceTable, *, cursor_known: bool) -> list[Finding]:
    full = spec.source_full_name
    if spec.id_column.lower() not in table.columns:
        return [error("source", "source.cdc_id_column",
                      f"Source table {full} has no column {spec.id_column!r} ({where}.cdc_id_column): set it to "
                      "a uniquely indexed column, such as the auto-increment id.", spec.name)]
    if cursor_known and covering_unique_index(table, spec.page_order) is None:
        return [error("source", "source.cdc_id_column",
                      f"Pages of {full} are ordered by ({', '.join(spec.page_order)}), which no unique index "
                      f"guarantees, so rows sharing a cursor second could be skipped or repeated between pages "
                      f"({where}.cdc_id_column): set cdc_id_column to a uniquely indexed column, such as the "
                      "auto-increment id.", spec.name)]
    return []


# -- reading the catalog ------------------------------------------------------------------------

def read_table(cur, spec: TableSpec) -> SourceTable | None:
    """The catalog's view of one table, or None when the user cannot see it."""
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (spec.database, spec.name),
    )
    columns = {name.lower(): Column(name, dtype, ctype) for name, dtype, ctype in cur.fetchall()}
    if not columns:
        return None
    cur.execute(
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (spec.database, spec.name),
    )
    indexes: dict[str, tuple[str, ...]] = {}
    for index, column in cur.fetchall():
        indexes[index] = (*indexes.get(index, ()), column)
    return SourceTable(columns, indexes)


def select_finding(cur, spec: TableSpec, user: str) -> Finding | None:
    """Whether the user may read the table: a `LIMIT 0` query reads no row."""
    try:
        cur.execute(f"SELECT * FROM {quote_mysql(spec.database)}.{quote_mysql(spec.name)} LIMIT 0")
        cur.fetchall()
    except pymysql.err.MySQLError as exc:
        if connection_lost(exc):
            raise
        if privilege_missing(exc):
            return error("source", "source.select",
                         f"User {user!r} may not read {spec.source_full_name} ({error_text(exc)}): "
                         f"GRANT SELECT ON {spec.source_full_name} TO {user!r}.", spec.name)
        return error("source", "source.select",
                     f"Reading {spec.source_full_name} failed ({error_text(exc)}): fix the table or the grants "
                     "before starting the producer.", spec.name)
    return None


# -- grants and the server --------------------------------------------------------------------

def _probe(cur, statements: tuple[str, ...]) -> BaseException | None:
    """None when one of `statements` runs (the next is tried only on a syntax error), else its error."""
    err: BaseException | None = None
    for stmt in statements:
        try:
            cur.execute(stmt)
            cur.fetchall()
            return None
        except pymysql.err.MySQLError as exc:
            if connection_lost(exc):
                raise
            err = exc
            if not syntax_error(exc):
                break
    return err


def replica_grant(version: str) -> str:
    """The grant that lets a user read replica status on this server (from `SELECT VERSION()`)."""
    return "SLAVE MONITOR (REPLICA MONITOR)" if "mariadb" in version.lower() else "REPLICATION CLIENT"


def grant_findings(cur, user: str, version: str) -> list[Finding]:
    """The producer runs without these grants, but it can then pass rows it should have held back
    (an open transaction, a lagging replica) and lose them for good: so a missing grant is an
    error. A probe that fails for another reason is a warning: the producer retries it."""
    out: list[Finding] = []
    err = _probe(cur, (PROCESS_PROBE,))
    if err is not None and privilege_missing(err):
        out.append(error("source", "source.grant.process",
                           f"User {user!r} lacks PROCESS, so the producer cannot see open transactions and ends "
                           "windows at the buffer alone: rows a transaction commits more than buffer_minutes after "
                           f"it started can fall behind the watermark and never be published; GRANT PROCESS ON "
                           f"*.* TO {user!r}."))
    elif err is not None:
        out.append(warning("source", "source.grant.process",
                           f"The open-transaction probe failed ({error_text(err)}): every producer window will "
                           "fail the same way until it runs; check the server's information_schema.innodb_trx."))
    grant = replica_grant(version)
    err = _probe(cur, REPLICA_PROBES)
    if err is not None and privilege_missing(err):
        first = grant.split(" (")[0]
        out.append(error("source", "source.grant.replica_monitor",
                           f"User {user!r} lacks {grant}, so the producer cannot tell whether the source is a "
                           f"lagging replica and may pass rows not applied yet; GRANT {first} ON *.* TO {user!r} "
                           "(read-only; needed even when the source is no replica, since only it can tell)."))
    elif err is not None and not syntax_error(err):
        out.append(warning("source", "source.grant.replica_monitor",
                           f"The replica-status probe failed ({error_text(err)}): windows will not be held for "
                           "replica lag; check the server's SHOW REPLICA STATUS."))
    return out


def default_database_finding(cur, database: str, user: str) -> Finding | None:
    """The producer connects with MYSQL_DATABASE as its default database: the login fails without it."""
    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
    if cur.fetchall():
        return None
    return error("source", "source.database",
                 f"Database {database!r} (MYSQL_DATABASE) does not exist or user {user!r} has no grant on it, so "
                 f"the producer's login would be refused: set MYSQL_DATABASE to the source database, or GRANT "
                 f"SELECT ON {database}.* TO {user!r}.", database)


def clock_finding(cur, max_drift_seconds: int) -> Finding | None:
    """The producer refuses to run when the source's clock is this far from ours."""
    t0 = time.time()
    cur.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
    t1 = time.time()
    drift = float(cur.fetchone()[0]) - (t0 + t1) / 2
    if abs(drift) <= max_drift_seconds:
        return None
    side = "ahead of" if drift > 0 else "behind"
    return error("source", "source.clock",
                 f"The source's clock is {abs(drift):.0f} s {side} this host's, past "
                 f"processing.max_clock_drift_seconds ({max_drift_seconds}), so the producer refuses to run: "
                 "synchronise both clocks (NTP).")


def check_source(config: PipelineConfig, settings: Settings) -> list[Finding]:
    """Every source problem; a source that cannot be reached or refuses the login is one finding."""
    mysql = settings.mysql
    try:
        # Without a default database, so that a missing grant on MYSQL_DATABASE is told as such
        # rather than as a server that does not answer.
        conn = connect(mysql, database="", read_timeout=30)
    except SourceUnreachableError as exc:
        return [unreachable("source", "source.connect", str(exc))]
    except ServiceUnavailableError as exc:  # refused login or unknown database: a setting to fix
        return [error("source", "source.connect", str(exc))]
    out: list[Finding] = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = str(one_row(cur)[0])
        if (f := default_database_finding(cur, mysql.database, mysql.user)) is not None:
            out.append(f)
        registry = TableRegistry(config)
        for position, t in enumerate(config.tables):
            spec = registry.get(t.name)
            table = read_table(cur, spec)
            out += table_findings(spec, position, table, mysql.user)
            if table is not None and (f := select_finding(cur, spec, mysql.user)) is not None:
                out.append(f)
        if registry.polled():  # what the poller needs; the CDC account is `connectors apply`'s to check
            out += grant_findings(cur, mysql.user, version)
        if (f := clock_finding(cur, config.processing.max_clock_drift_seconds)) is not None:
            out.append(f)
    return out
