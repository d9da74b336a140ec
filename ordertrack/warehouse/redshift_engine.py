"""Amazon Redshift: batches staged to S3 as Parquet, `COPY`, then the landing SQL.

`WAREHOUSE_URL=redshift://host:5439/dev`, with `WAREHOUSE_USER`, `WAREHOUSE_PASSWORD`,
`WAREHOUSE_S3_STAGING=s3://bucket/prefix/` and `WAREHOUSE_IAM_ROLE` (the role COPY assumes).
What has run where is written in the README: the S3 half against moto's server, the SQL only
rendered and parsed back with sqlglot's Redshift dialect; not against a real cluster.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ordertrack.errors import ConfigError, ServiceUnavailableError
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.warehouse import redshift_sql as sql
from ordertrack.warehouse.positions import check_not_rewound
from ordertrack.warehouse.engine import AfterLanding, BeforeCommit, Execute, LandResult, MergeFailed, MisfitColumns, Misfits, T
from ordertrack.warehouse.fit import reject_misfits
from ordertrack.warehouse.types import VARCHAR_MAX_BYTES, Column, catalog_type, widened
from ordertrack.watermarks.s3_files import parse_s3_url, s3_client

log = get_logger(__name__)


def utf8_only(staged: pa.Table) -> pa.Table:
    """Values that are not UTF-8, or longer than the stage's VARCHAR, become rejects here: one of
    them would fail the COPY of the whole batch."""
    values, reasons = staged.column("value").to_pylist(), staged.column("reject_reason").to_pylist()
    for i, v in enumerate(values):
        if v is not None:
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                values[i], reasons[i] = None, "value is not UTF-8 text"
                continue
            if len(v) > VARCHAR_MAX_BYTES:
                values[i], reasons[i] = None, f"the message is {len(v)} bytes, more than the {VARCHAR_MAX_BYTES} a Redshift VARCHAR holds"
    return staged.set_column(3, "value", pa.array(values, pa.binary())).set_column(
        4, "reject_reason", pa.array(reasons, pa.string()))


def json_keys(staged: pa.Table) -> set[str]:
    """Every top-level key of the batch's JSON objects."""
    keys: set[str] = set()
    for v in staged.column("value").to_pylist():
        if v is None:
            continue
        try:
            doc = orjson.loads(v)
        except orjson.JSONDecodeError:  # also raised for bytes that are not UTF-8
            continue
        if isinstance(doc, dict):
            keys.update(doc)
    return keys


def unknown_json_keys(keys: set[str], raw_columns: dict[str, str]) -> set[str]:
    """Keys with no raw column. Redshift folds column names to lower case (`traceSeq` is stored
    as `traceseq`), so names compare without case; the lander's check for keys that differ from
    a column only by case then never mistakes a folded column for a poison key."""
    folded = {c.lower() for c in raw_columns}
    return {k for k in keys if k.lower() not in folded}


def stage_to_s3(client, staging_url: str, topic: str, staged: pa.Table) -> str:
    """Write the staged batch as one Parquet object; return its s3:// URI."""
    bucket, prefix = parse_s3_url(staging_url)
    key = f"{prefix}{topic}/{uuid.uuid4().hex}.parquet"
    buf = io.BytesIO()
    pq.write_table(staged, buf, compression="zstd")
    client.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
    return f"s3://{bucket}/{key}"


class RedshiftEngine:
    dialect = "redshift"
    placeholder = "%s"

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
        self._conn = None

    def _connect(self):
        import redshift_connector

        if self._conn is None:
            try:
                self._conn = redshift_connector.connect(
                    host=self._host, port=self._port, database=self._db, user=self.settings.warehouse.user,
                    password=self.settings.warehouse.password.get_secret_value(),
                )
            except Exception as exc:  # the driver raises several unrelated types
                raise ServiceUnavailableError(
                    f"Cannot connect to Redshift at {self._host}:{self._port}/{self._db} as "
                    f"{self.settings.warehouse.user!r}: {type(exc).__name__}."
                ) from None
            self._conn.autocommit = True
            for stmt in sql.catalog_ddl(self.raw_schema, self.mart_schema):
                self._conn.cursor().execute(stmt)
        return self._conn

    def query(self, statement: str, params: list[Any] | None = None) -> list[tuple]:
        cur = self._connect().cursor()
        cur.execute(statement, params)
        return list(cur.fetchall()) if cur.description else []

    def raw_columns(self, spec: TableSpec) -> dict[str, str]:
        rows = self.query(
            "SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [spec.raw_schema, spec.raw_table],
        )
        return {n: catalog_type(t, length, precision, scale) for n, t, length, precision, scale in rows}

    def ensure_raw_table(self, spec: TableSpec, columns: list[Column]) -> list[str]:
        existing = self.raw_columns(spec)
        if not existing:
            self.query(sql.create_raw_table(spec, columns))
            return [c.name for c in columns]
        # The catalog folds names to lower case (`traceSeq` is `traceseq`): compare without case.
        have = {name.lower(): dtype for name, dtype in existing.items()}
        added = [c for c in columns if c.name.lower() not in have]
        for c in added:  # Redshift: one ADD COLUMN per statement
            self.query(sql.add_column(spec, c))
        for c in columns:
            wider = widened(have[c.name.lower()], c.type) if c.name.lower() in have else None
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
        if column.lower() in keys:
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
            [spec.mart_schema, column.lower(), spec.mart_table, f"hist_{spec.name}_%"],
        )
        return {t: catalog_type(d, length, precision, scale) for t, d, length, precision, scale in rows}

    def next_offsets(self, topic: str) -> dict[int, int]:
        return {int(p): int(o) for p, o in self.query(sql.next_offsets(self.raw_schema, topic))}

    def unknown_keys(self, spec: TableSpec, staged: pa.Table) -> set[str]:
        return unknown_json_keys(json_keys(staged), self.raw_columns(spec))

    def _executor(self, cur) -> Execute:  # noqa: ANN001
        def execute(statement: str, params: dict[str, Any]) -> list[tuple]:
            cur.paramstyle = "pyformat"  # sqlglot renders :name as %(name)s for Redshift
            cur.execute(statement, params or None)
            return list(cur.fetchall()) if cur.description else []

        return execute

    def in_transaction(self, fn: Callable[[Execute], T]) -> T:
        cur = self._connect().cursor()
        cur.execute("BEGIN")
        try:
            out = fn(self._executor(cur))
            cur.execute("COMMIT")
            return out
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def unmerged_batches(self, topic: str) -> list[str]:
        rows = self.query(sql.unmerged_batches(self.raw_schema, topic))
        return [r[0] for r in rows]

    def mark_merged(self, execute: Execute, batch_id: str) -> None:
        execute(sql.mark_merged(self.raw_schema), {"batch_id": batch_id})

    def land(self, spec: TableSpec, topic: str, staged: pa.Table, after: AfterLanding | None = None,
             before_commit: BeforeCommit | None = None, misfits: Misfits = "reject",
             expected: dict[int, int] | None = None) -> LandResult:
        batch_id = uuid.uuid4().hex
        columns = self.raw_columns(spec)
        staged = utf8_only(staged)
        # The INSERT's casts would fail the whole batch on one bad value, or round a decimal.
        staged, bad = reject_misfits(staged, {c: t for c, t in columns.items() if not c.startswith("_")})
        if bad and misfits == "raise":
            raise MisfitColumns(bad)
        uri = stage_to_s3(self._s3, self.settings.warehouse.s3_staging, topic, staged)
        # A replay committing after this read is caught by the `expected` check after BEGIN.
        holes = bool(self.query(sql.open_holes(spec.raw_schema, topic)))
        landing = sql.land_statements(spec, columns, topic, uri, self.settings.warehouse.iam_role,
                                         mart_schema=self.mart_schema, batch_id=batch_id, merged=after is not None,
                                         json_keys={k.lower(): k for k in json_keys(staged)},
                                         declared=list(expected or ()), holes=holes)
        cur = self._connect().cursor()
        try:
            for i, stmt in enumerate(landing.writes):
                cur.execute(stmt)
                if i == 0 and expected:  # right after BEGIN: the position this transaction lands from
                    cur.execute(sql.next_offsets(spec.raw_schema, topic))
                    check_not_rewound(topic, {int(p): int(o) for p, o in cur.fetchall()}, expected)
            cur.execute(landing.rejects)
            rejects = cur.fetchall()
            cur.execute(landing.counts)
            total, landed = cur.fetchone()
            if after is not None:
                try:
                    after(self._executor(cur), spec, batch_id)
                except Exception as exc:
                    raise MergeFailed() from exc
            rejected = [{"partition": p, "offset": o, "reason": r, "value": v} for p, o, r, v in rejects]
            if before_commit is not None and rejected:
                before_commit(rejected)
            cur.execute(landing.commit)
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except Exception:  # a lost connection: the first error is the one worth raising
                self._conn = None
            raise
        return LandResult(
            landed=int(landed or 0),
            skipped=staged.num_rows - int(total or 0),
            rejected=rejected,
            batch_id=batch_id,
            merged=after is not None,
        )

    def vacuum(self, specs: list[TableSpec]) -> list[str]:
        statements = sql.vacuum_statements(specs)
        con = self._connect()  # autocommit: VACUUM refuses to run inside a transaction block
        for stmt in statements:
            con.cursor().execute(stmt)
        return statements

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
