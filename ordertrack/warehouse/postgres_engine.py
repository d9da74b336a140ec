"""PostgreSQL: the shared landing, each batch staged by `COPY ... FROM STDIN` (psycopg 3).

`WAREHOUSE_URL=postgresql://user:password@host:5432/db` (the password may also come from
`WAREHOUSE_PASSWORD`). A real warehouse for smaller teams, and the engine closest to Redshift
that runs here: the same statements, rendered from the Redshift dialect, executed by a real
server with transactions, locks and `DELETE ... USING`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pyarrow as pa
from psycopg import sql as pgsql

from ordertrack.errors import ConfigError, SecurityError, ServiceUnavailableError, without_secrets
from ordertrack.identifiers import quote_ansi as q
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.tls import tls_failure
from ordertrack.warehouse.catalog import catalog_ddl, table_columns
from ordertrack.warehouse.engine import META_COLUMNS, Session, T
from ordertrack.warehouse.landing import SharedSql
from ordertrack.warehouse.redo import redo_on_conflict
from ordertrack.warehouse.types import Column, widened

log = get_logger(__name__)

STATEMENT_TIMEOUT_MS = 15 * 60 * 1000
"""As on Redshift: a statement stuck longer than this fails and its unit of work is tried again."""

_PYFORMAT = re.compile(r"%(?!\(\w+\)s)")
_RETRYABLE = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available


def _pg_type(t: str) -> str:
    return "DOUBLE PRECISION" if t.upper() in ("DOUBLE", "DOUBLE PRECISION") else t


class _PgSession:
    def __init__(self, con: psycopg.Connection) -> None:
        self.con = con

    def __call__(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        with self.con.cursor() as cur:
            if params:
                # psycopg formats %(name)s itself: a literal % in the statement is doubled.
                cur.execute(_PYFORMAT.sub("%%", sql), params)
            else:
                cur.execute(sql.encode())
            return list(cur.fetchall()) if cur.description else []

    def lock(self, name: str) -> None:
        # A transaction-level advisory lock: released at COMMIT or ROLLBACK, never left behind.
        with self.con.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])

    def stage(self, name: str, rows: pa.Table, types: dict[str, str]) -> None:
        cols = ", ".join(f"{q(c)} {_pg_type(types[c])}" for c in rows.column_names)
        with self.con.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {q(name)} ({cols})".encode())
            names = pgsql.SQL(", ").join(pgsql.Identifier(c) for c in rows.column_names)
            with cur.copy(pgsql.SQL("COPY {} ({}) FROM STDIN").format(pgsql.Identifier(name), names)) as copy:
                for row in zip(*(rows.column(c).to_pylist() for c in rows.column_names)):
                    copy.write_row(row)

    def unstage(self, name: str) -> None:
        self(f"DROP TABLE {q(name)}", {})


class PostgresEngine(SharedSql):
    dialect = "postgres"
    placeholder = "%s"
    alters_types_in_transaction = True

    def __init__(self, settings: Settings, raw_schema: str, mart_schema: str) -> None:
        w = settings.warehouse
        u = urlparse(w.url)
        if not u.hostname or not u.path.strip("/"):
            raise ConfigError("PostgreSQL needs WAREHOUSE_URL=postgresql://user:password@host:port/database.")
        self._conninfo = w.url
        self._password = (w.password.get_secret_value() if w.password else None) if not u.password else None
        self._user = w.user if not u.username else None
        self._where = f"{u.hostname}:{u.port or 5432}{u.path}"
        # TLS unless told otherwise: libpq's own default (`prefer`) falls back to plaintext.
        # An `sslmode` in the URL wins (the local stack's says `disable`: its server has no TLS).
        in_url = parse_qs(u.query).get("sslmode")
        if in_url and in_url[-1] in ("prefer", "allow"):
            raise ConfigError(f"sslmode={in_url[-1]} in WAREHOUSE_URL falls back to plaintext without a word: use "
                              "require, verify-ca or verify-full (or disable, said outright).")
        self._tls: dict[str, str] = {} if in_url else {"sslmode": w.ssl_mode}
        if w.ssl_root_cert and "sslrootcert" not in parse_qs(u.query):
            self._tls["sslrootcert"] = w.ssl_root_cert
        self.settings = settings
        self.raw_schema, self.mart_schema = raw_schema, mart_schema
        self._local = threading.local()
        self._all: list[psycopg.Connection] = []  # every thread's connection, for close()
        self._all_lock = threading.Lock()
        with self._connection() as con:
            for stmt in catalog_ddl(raw_schema, mart_schema, self.dialect):
                con.execute(stmt.encode())

    # -- connections ------------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection:
        """One connection per thread (the worker lands tables in parallel threads), opened when
        first needed and again after it broke."""
        con = getattr(self._local, "con", None)
        if con is not None and not con.closed and not con.broken:
            return con
        # Client-side binding, as Redshift's driver does: the server never has to deduce a
        # parameter's type (one used as text in one place and VARCHAR in another is refused).
        kwargs: dict[str, Any] = {"connect_timeout": 10, "autocommit": True, "cursor_factory": psycopg.ClientCursor,
                                  "options": f"-c timezone=UTC -c statement_timeout={STATEMENT_TIMEOUT_MS}"}
        if self._password:
            kwargs["password"] = self._password
        if self._user:
            kwargs["user"] = self._user
        kwargs.update(self._tls)
        try:
            con = psycopg.connect(self._conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            text = without_secrets(first)
            if re.search(r"\bSSL\b|certificate", text) and tls_failure(text) is not None:
                # A setting to fix (the server's TLS, the CA, the mode), never an outage to wait out.
                raise SecurityError(f"Cannot connect to PostgreSQL at {self._where} over TLS: {text} (check "
                                    "WAREHOUSE_SSL_MODE and WAREHOUSE_SSL_ROOT_CERT).") from None
            raise ServiceUnavailableError(f"Cannot connect to PostgreSQL at {self._where}: {text}") from None
        self._local.con = con
        with self._all_lock:
            self._all.append(con)
        return con

    def in_transaction(self, fn: Callable[[Session], T]) -> T:
        """One transaction; redone from the start (up to a minute) after a deadlock or a
        serialization failure: the worker's threads merge into marts that overlap (tracking heals
        orders), and PostgreSQL breaks such a cycle by failing one of them."""
        return redo_on_conflict(self.retryable, lambda: self._transaction(fn))

    def _transaction(self, fn: Callable[[Session], T]) -> T:
        con = self._connection()
        try:
            with con.transaction():
                return fn(_PgSession(con))
        except psycopg.OperationalError as exc:
            if con.broken:
                raise self._lost(exc) from exc
            raise

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error) and getattr(exc, "sqlstate", None) in _RETRYABLE

    def query(self, statement: str, params: list[Any] | None = None) -> list[tuple]:
        con = self._connection()
        try:
            with con.cursor() as cur:
                cur.execute(statement, params)
                return list(cur.fetchall()) if cur.description else []
        except psycopg.OperationalError as exc:
            if con.broken:
                raise self._lost(exc) from exc
            raise

    def _lost(self, exc: psycopg.OperationalError) -> ServiceUnavailableError:
        """A lost connection, as one sentence (an outage the caller waits out or reports)."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ServiceUnavailableError(f"The PostgreSQL connection to {self._where} was lost: {without_secrets(first)}")

    # -- raw tables -------------------------------------------------------------------------------
    def raw_columns(self, spec: TableSpec) -> dict[str, str]:
        return table_columns(self, spec.raw_schema, spec.raw_table)

    def ensure_raw_table(self, spec: TableSpec, columns: list[Column]) -> list[str]:
        existing = self.raw_columns(spec)
        table = f"{q(spec.raw_schema)}.{q(spec.raw_table)}"

        def ddl(session: Session) -> list[str]:
            if not existing:
                cols = ", ".join(f"{q(c.name)} {_pg_type(c.type)}" for c in (*columns, *META_COLUMNS))
                session(f"CREATE SCHEMA IF NOT EXISTS {q(spec.raw_schema)}", {})
                session(f"CREATE TABLE IF NOT EXISTS {table} ({cols})", {})
                return [c.name for c in columns]
            added = []
            for c in (*columns, *META_COLUMNS):
                if c.name not in existing:
                    session(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {q(c.name)} {_pg_type(c.type)}", {})
                    added.append(c.name)
                elif (wider := widened(existing[c.name], c.type)) is not None:
                    session(f"ALTER TABLE {table} ALTER COLUMN {q(c.name)} TYPE {wider}", {})
                    log.info("warehouse.column.widened", table=spec.raw_table, column=c.name,
                             was=existing[c.name], now=wider)
            return [a for a in added if not a.startswith("_")]

        return self.in_transaction(ddl)

    def vacuum(self, specs: list[TableSpec]) -> list[str]:
        statements = [f"VACUUM ANALYZE {q(s.mart_schema)}.{q(s.mart_table)}" for s in specs
                      if self.query("SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                                    [s.mart_schema, s.mart_table])]
        for stmt in statements:  # autocommit: VACUUM refuses to run inside a transaction block
            self.query(stmt)
        return statements

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            conns, self._all = self._all, []
        for con in conns:
            con.close()
        self._local.con = None
