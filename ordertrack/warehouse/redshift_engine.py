"""Amazon Redshift: the shared landing, each batch staged as Parquet on S3 and loaded by `COPY`.

`WAREHOUSE_URL=redshift://host:5439/dev`, with `WAREHOUSE_USER`, `WAREHOUSE_PASSWORD`,
`WAREHOUSE_S3_STAGING=s3://bucket/prefix/` and `WAREHOUSE_IAM_ROLE` (the role COPY assumes).
Every session turns on `enable_case_sensitive_identifier`, so a column keeps its case
(`pathTime`, as the source and the messages spell it) instead of being folded to `pathtime`.
What has run where is written in the README: the statement sequence against a recording cursor,
the S3 half against moto's server; not against a real cluster.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ordertrack.errors import ConfigError, ServiceUnavailableError
from ordertrack.identifiers import quote_ansi as q
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.warehouse import redshift_sql as sql
from ordertrack.warehouse.catalog import catalog_ddl, table_columns
from ordertrack.warehouse.engine import Session, T
from ordertrack.warehouse.landing import SharedSql
from ordertrack.warehouse.redo import redo_on_conflict
from ordertrack.warehouse.types import Column, catalog_type, widened
from ordertrack.watermarks.s3_files import parse_s3_url, s3_client

log = get_logger(__name__)

SESSION_SETTINGS = (
    # Quoted identifiers keep their case, so `"pathTime"` is a column named pathTime (AWS docs,
    # enable_case_sensitive_identifier); without it the catalog says `pathtime`.
    "SET enable_case_sensitive_identifier TO true",
    "SET timezone TO 'UTC'",
)
STATEMENT_TIMEOUT_MS = 15 * 60 * 1000
"""A statement that runs longer than this (a COPY stuck on S3, a lock) fails, and its batch is
tried again, instead of holding the worker forever."""


def stage_to_s3(client: Any, staging_url: str, prefix_name: str, rows: pa.Table) -> tuple[list[str], str]:
    """Write the typed batch as one Parquet object and a COPY manifest naming it (with its length,
    which COPY of Parquet requires); return (every URI written, the manifest's URI)."""
    bucket, prefix = parse_s3_url(staging_url)
    key = f"{prefix}{prefix_name}/{uuid.uuid4().hex}"
    buf = io.BytesIO()
    pq.write_table(rows, buf, compression="snappy")  # what every COPY of Parquet reads
    body = buf.getvalue()
    client.put_object(Bucket=bucket, Key=f"{key}.parquet", Body=body)
    manifest = {"entries": [{"url": f"s3://{bucket}/{key}.parquet", "mandatory": True,
                             "meta": {"content_length": len(body)}}]}
    client.put_object(Bucket=bucket, Key=f"{key}.manifest", Body=orjson.dumps(manifest))
    data, manifest_uri = f"s3://{bucket}/{key}.parquet", f"s3://{bucket}/{key}.manifest"
    return [data, manifest_uri], manifest_uri




class _RedshiftSession:
    def __init__(self, cursor: Any, engine: "RedshiftEngine") -> None:
        self.cursor = cursor
        self.engine = engine
        self.staged: list[str] = []  # s3:// URIs this transaction wrote, deleted when it ends

    # `sql` as `Session` names it; it hides the module `sql` (redshift_sql), unused in this method
    def __call__(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        if params:
            # The driver turns %(name)s into $n and binds server-side; no statement carries a
            # literal % (LIKE patterns are parameters), which its parser would misread.
            self.cursor.paramstyle = "pyformat"  # sqlglot renders :name as %(name)s for Redshift
        self.cursor.execute(sql, params or None)
        return list(self.cursor.fetchall()) if self.cursor.description else []

    def lock(self, name: str) -> None:
        pass  # serializable isolation aborts one of two conflicting writers; it is redone

    def stage(self, name: str, rows: pa.Table, types: dict[str, str]) -> None:
        keys, manifest = stage_to_s3(self.engine._s3, self.engine.settings.warehouse.s3_staging or "", name, rows)
        self.staged.extend(keys)
        cols = ", ".join(f"{q(c)} {types[c]}" for c in rows.column_names)
        self(f"CREATE TEMP TABLE {q(name)} ({cols})", {})
        self(sql.copy_parquet(name, manifest, self.engine.settings.warehouse.iam_role or ""), {})

    def unstage(self, name: str) -> None:
        self(f"DROP TABLE {q(name)}", {})


class RedshiftEngine(SharedSql):
    dialect = "redshift"
    placeholder = "%s"
    alters_types_in_transaction = False  # ALTER COLUMN TYPE refuses to run in a transaction block

    def __init__(self, settings: Settings, raw_schema: str, mart_schema: str) -> None:
        w = settings.warehouse
        u = urlparse(w.url)
        if not (u.hostname and w.user and w.password and w.s3_staging and w.iam_role):
            raise ConfigError(
                "Redshift needs WAREHOUSE_URL=redshift://host:port/db, WAREHOUSE_USER, WAREHOUSE_PASSWORD, "
                "WAREHOUSE_S3_STAGING and WAREHOUSE_IAM_ROLE."
            )
        self.settings = settings
        self.raw_schema, self.mart_schema = raw_schema, mart_schema
        self._host, self._port, self._db = u.hostname, u.port or 5439, u.path.lstrip("/") or "dev"
        self._s3 = s3_client(settings.s3)
        self._local = threading.local()
        self._all: list[Any] = []  # every thread's connection, for close()
        self._all_lock = threading.Lock()

    @property
    def _conn(self) -> Any:
        """This thread's connection: the worker lands tables in parallel threads, and a DB-API
        connection runs one transaction at a time."""
        return getattr(self._local, "conn", None)

    @_conn.setter
    def _conn(self, conn: Any) -> None:
        self._local.conn = conn

    def _connect(self) -> Any:
        import redshift_connector

        if self._conn is None:
            password = self.settings.warehouse.password
            assert password is not None  # __init__ refuses settings without one
            try:
                conn = redshift_connector.connect(
                    host=self._host, port=self._port, database=self._db, user=self.settings.warehouse.user,
                    password=password.get_secret_value(),
                    ssl=True, sslmode="verify-full", timeout=60,
                )
            except Exception as exc:  # the driver raises several unrelated types
                raise ServiceUnavailableError(
                    f"Cannot connect to Redshift at {self._host}:{self._port}/{self._db} as "
                    f"{self.settings.warehouse.user!r}: {type(exc).__name__}."
                ) from None
            try:
                conn.autocommit = True
                for stmt in (*SESSION_SETTINGS, f"SET statement_timeout TO {STATEMENT_TIMEOUT_MS}",
                             *catalog_ddl(self.raw_schema, self.mart_schema, self.dialect)):
                    conn.cursor().execute(stmt)
            except BaseException:
                conn.close()  # never kept without its settings (identifiers would fold to lower case)
                raise
            self._conn = conn
            with self._all_lock:
                self._all.append(conn)
        return self._conn

    def query(self, statement: str, params: list[Any] | None = None) -> list[tuple]:
        cur = self._connect().cursor()
        cur.execute(statement, params)
        return list(cur.fetchall()) if cur.description else []

    def raw_columns(self, spec: TableSpec) -> dict[str, str]:
        return table_columns(self, spec.raw_schema, spec.raw_table)

    def ensure_raw_table(self, spec: TableSpec, columns: list[Column]) -> list[str]:
        existing = self.raw_columns(spec)
        if not existing:
            self.query(sql.create_raw_table(spec, columns))
            return [c.name for c in columns]
        added = [c for c in columns if c.name not in existing]
        for c in added:  # Redshift: one ADD COLUMN per statement
            self.query(sql.add_column(spec, c))
        for c in columns:
            wider = widened(existing[c.name], c.type) if c.name in existing else None
            if wider is None:
                continue
            # The mart and its history tables are widened here with raw, not in the merge: Redshift
            # refuses ALTER COLUMN TYPE inside a transaction block, and the merge runs in one.
            targets = [(spec.raw_schema, spec.raw_table)] + [
                (spec.mart_schema, table) for table, dtype in self._mart_column(spec, c.name).items()
                if widened(dtype, wider) is not None]
            for schema, table in targets:
                self._widen(schema, table, c.name, wider)
        return [c.name for c in added]

    def _widen(self, schema: str, table: str, column: str, wider: str) -> None:
        if wider.startswith("VARCHAR"):  # in place, in autocommit
            self.query(sql.alter_varchar(schema, table, column, wider))
            return
        keys = {r[0] for r in self.query(sql.key_columns(), [schema, table])}
        if column in keys:
            # A DISTKEY or SORTKEY column cannot be dropped, so not copied either: its values that
            # outgrow it stay dead letters naming the column (see README, Redshift).
            log.warning("redshift.widen.key_column", table=f"{schema}.{table}", column=column, to=wider)
            return
        self.in_transaction(lambda execute: [execute(stmt, {}) for stmt in
                                             sql.widen_by_copy(schema, table, column, wider)])

    def _mart_column(self, spec: TableSpec, column: str) -> dict[str, str]:
        """Table -> type of `column` in the mart and its history tables."""
        rows = self.query(
            "SELECT table_name, data_type, character_maximum_length, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = %s AND column_name = %s "
            "AND (table_name = %s OR table_name LIKE %s)",
            [spec.mart_schema, column, spec.mart_table, f"hist_{spec.name}_%"],
        )
        return {t: catalog_type(d, length, precision, scale) for t, d, length, precision, scale in rows}

    def retryable(self, exc: BaseException) -> bool:
        # Serializable isolation violation (error 1023): two transactions wrote the same table.
        return "1023" in str(exc) and "serializable" in str(exc).lower()

    def in_transaction(self, fn: Callable[[Session], T]) -> T:
        return redo_on_conflict(self.retryable, lambda: self._transaction(fn))

    def _transaction(self, fn: Callable[[Session], T]) -> T:
        cur = self._connect().cursor()
        session = _RedshiftSession(cur, self)
        cur.execute("BEGIN")
        try:
            out = fn(session)
            cur.execute("COMMIT")
            return out
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except Exception:  # a lost connection: the first error is the one worth raising
                self._conn = None
            raise
        finally:
            self._unstage(session.staged)

    def _unstage(self, uris: list[str]) -> None:
        """The staged files are only needed by COPY: deleted once the transaction has ended (they
        hold the batch's rows). A failed delete is logged, never raised."""
        for uri in uris:
            bucket, key = uri[len("s3://"):].split("/", 1)
            try:
                self._s3.delete_object(Bucket=bucket, Key=key)
            except Exception as exc:  # the landing's own outcome stands
                log.warning("redshift.staging.not_deleted", uri=uri, error=type(exc).__name__)

    def vacuum(self, specs: list[TableSpec]) -> list[str]:
        statements = sql.vacuum_statements(specs)
        con = self._connect()  # autocommit: VACUUM refuses to run inside a transaction block
        for stmt in statements:
            con.cursor().execute(stmt)
        return statements

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # already broken
                pass
        self._conn = None
