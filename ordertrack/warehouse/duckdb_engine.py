"""DuckDB, the embedded default warehouse: one file, `duckdb:///path/to/warehouse.duckdb`.

DuckDB lets one process write a file at a time. The worker, the scheduler and the CLI share it
by keeping every unit of work short: each opens the file, runs one transaction and closes it,
and a caller that finds the file locked retries with backoff (tenacity) for up to a minute.
A batch lands in well under a second, so waiting writers see short delays, never failures.

The landing is the shared one (`ordertrack.warehouse.landing`); a typed batch is staged by
handing DuckDB the Arrow table itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import duckdb
import pyarrow as pa
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

from ordertrack.identifiers import quote_ansi as q
from ordertrack.log import get_logger
from ordertrack.tables import TableSpec
from ordertrack.warehouse.catalog import catalog_ddl
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, LEDGER_TABLE, META_COLUMNS, Session, T
from ordertrack.warehouse.landing import SharedSql
from ordertrack.warehouse.types import Column, widened


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _conflict(exc: BaseException) -> bool:
    # Two threads of one process creating the same schema or mart at once (the first landings
    # of several tables into a fresh warehouse): the loser's transaction is simply redone. Under
    # the same concurrency DuckDB was seen (once, by the fault harness) failing a landing with
    # "Table Function with name python_arrow_scan does not exist": redone the same way.
    text = str(exc).lower()
    return ((isinstance(exc, duckdb.TransactionException) and "conflict" in text)
            or (isinstance(exc, duckdb.CatalogException) and "python_arrow_scan" in text))


def _busy(exc: BaseException) -> bool:
    return _locked(exc) or _conflict(exc)


LOCK_WAIT_SECONDS = float(os.environ.get("ORDERTRACK_DUCKDB_LOCK_WAIT_SECONDS", "60"))
"""How long one unit of work waits for the file lock before it fails (and its caller decides:
a one-shot command exits 4, the worker keeps its batch and waits on)."""

F = TypeVar("F", bound=Callable[..., Any])
_retry_on_lock = cast(Callable[[F], F], retry(
    retry=retry_if_exception(_busy),
    wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
    stop=stop_after_delay(LOCK_WAIT_SECONDS),
    reraise=True,
))


log = get_logger(__name__)


def _duck_type(t: str) -> str:
    # DuckDB's VARCHAR has no length; a length in the DDL is accepted but meaningless.
    return "VARCHAR" if t.upper().startswith("VARCHAR") else t


class DuckDBEngine(SharedSql):
    dialect = "duckdb"
    placeholder = "?"
    alters_types_in_transaction = True

    def __init__(self, path: str | Path, raw_schema: str = "settlement_public", mart_schema: str = "settlement_ods") -> None:
        self.path = Path(path)
        self.raw_schema = raw_schema
        self.mart_schema = mart_schema
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._init_catalog()

    # -- connections ------------------------------------------------------------------------------
    @_retry_on_lock
    def _open(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(self.path))
        # Warehouse timestamps are UTC, as on Redshift, whatever the host's time zone.
        con.execute("SET TimeZone = 'UTC'")
        return con

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; nested uses in one thread share it."""
        con = getattr(self._local, "con", None)
        if con is not None:
            yield con
            return
        con = self._open()
        self._local.con = con
        try:
            yield con
        finally:
            self._local.con = None
            con.close()

    def _init_catalog(self) -> None:
        with self.connection() as con:
            for stmt in catalog_ddl(self.raw_schema, self.mart_schema, self.dialect):
                con.execute(stmt)
            # Warehouse files made before these columns existed.
            for table, col, typ in ((q(self.raw_schema) + "." + q(LEDGER_TABLE), "batch_id", "VARCHAR"),
                                    (q(self.raw_schema) + "." + q(LEDGER_TABLE), "merged_at", "TIMESTAMP"),
                                    (q(self.mart_schema) + "." + q(EXCEPTIONS_TABLE), "resolved_by", "VARCHAR")):
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} {typ}")

    # -- protocol ---------------------------------------------------------------------------------
    def raw_columns(self, spec: TableSpec) -> dict[str, str]:
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [spec.raw_schema, spec.raw_table],
        )
        return {name: dtype for name, dtype in rows}

    @_retry_on_lock
    def ensure_raw_table(self, spec: TableSpec, columns: list[Column]) -> list[str]:
        existing = self.raw_columns(spec)
        table = f"{q(spec.raw_schema)}.{q(spec.raw_table)}"
        with self.connection() as con:
            if not existing:
                cols = ", ".join(f"{q(c.name)} {_duck_type(c.type)}" for c in (*columns, *META_COLUMNS))
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(spec.raw_schema)}")
                con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
                return [c.name for c in columns]
            added = []
            for c in (*columns, *META_COLUMNS):
                if c.name not in existing:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {q(c.name)} {_duck_type(c.type)}")
                    added.append(c.name)
                elif (wider := widened(existing[c.name], _duck_type(c.type))) is not None:
                    # The source widened the column: raw follows, and the merge widens the marts.
                    con.execute(f"ALTER TABLE {table} ALTER COLUMN {q(c.name)} SET DATA TYPE {wider}")
                    log.info("warehouse.column.widened", table=spec.raw_table, column=c.name,
                             was=existing[c.name], now=wider)
            return [a for a in added if not a.startswith("_")]

    @_retry_on_lock
    def in_transaction(self, fn: Callable[[Session], T]) -> T:
        with self.connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                out = fn(_DuckSession(con))
                con.execute("COMMIT")
                return out
            except BaseException:
                _rollback(con)
                raise

    def retryable(self, exc: BaseException) -> bool:
        return _busy(exc)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        with self.connection() as con:
            return _query(con, sql, params)

    def vacuum(self, specs: list[TableSpec]) -> list[str]:
        # DuckDB's VACUUM only refreshes statistics; CHECKPOINT is what vacuums deleted rows
        # and gives their space back (DuckDB docs, "Reclaiming space").
        statements = [f"VACUUM ANALYZE {q(s.mart_schema)}.{q(s.mart_table)}" for s in specs
                      if self.query("SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                                    [s.mart_schema, s.mart_table])]
        statements.append("CHECKPOINT")
        with self.connection() as con:
            for stmt in statements:
                _query(con, stmt, None)
        return statements

    def close(self) -> None:
        pass  # connections are per unit of work


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    # A conflict at COMMIT has already ended the transaction; a second error here would hide
    # the first (and with it the fact that the work is worth redoing).
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


@_retry_on_lock
def _query(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


class _DuckSession:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def __call__(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        # DuckDB refuses named parameters a statement does not use.
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        cur = self.con.execute(sql, used) if used else self.con.execute(sql)
        return cur.fetchall() if cur.description else []

    def lock(self, name: str) -> None:
        pass  # one process writes the file at a time, and one thread lands a table at a time

    def stage(self, name: str, rows: pa.Table, types: dict[str, str]) -> None:
        # Read in place: a landing reads the stage's rows in one statement (the fresh rows; a
        # replay's open hole adds one more), so copying them into a temporary table first cost as
        # much as that read (58 ms of 100k scan events).
        self.con.register(name, rows)

    def unstage(self, name: str) -> None:
        self.con.unregister(name)
