"""DuckDB, the embedded default warehouse: one file, `duckdb:///path/to/warehouse.duckdb`.

DuckDB lets one process write a file at a time. The worker, the scheduler and the CLI share it
by keeping every unit of work short: each opens the file, runs one transaction and closes it,
and a caller that finds the file locked retries with backoff (tenacity) for up to a minute.
A batch lands in well under a second, so waiting writers see short delays, never failures.

Batches arrive as Arrow tables whose `value` column is the raw JSON of each message; DuckDB
parses them in SQL (`json_transform`), vectorized, instead of Python decoding row by row.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

from ordertrack.errors import ConfigError
from ordertrack.identifiers import quote_ansi as q
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import (
    EXCEPTIONS_TABLE,
    JOB_RUNS_TABLE,
    LEDGER_TABLE,
    META_COLUMNS,
    AfterLanding,
    BeforeCommit,
    Execute,
    LandResult,
    MergeFailed,
    MisfitColumns,
    Misfits,
    T,
)
from ordertrack.log import get_logger
from ordertrack.warehouse.positions import (advance_holes, check_not_rewound, lands, positions_relation, replaced_rows,
                                             replays_ddl)
from ordertrack.warehouse.types import VARCHAR_MAX_BYTES, Column, widened


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

_retry_on_lock = retry(
    retry=retry_if_exception(_busy),
    wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
    stop=stop_after_delay(LOCK_WAIT_SECONDS),
    reraise=True,
)


log = get_logger(__name__)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _misfits(columns: dict[str, str]) -> list[tuple[str, str]]:
    """(condition, reason) for every way a value can fail its raw column, over `r` (the values
    transformed to the column types) and `t` (the same values as text). A value is never changed
    silently: one that does not convert, would be rounded or cut, or is longer than a warehouse
    VARCHAR holds is rejected, with a reason that starts `the value of <column> `."""
    out: list[tuple[str, str]] = []
    for c, dtype in columns.items():
        col, text = f"r.{q(c)}", f"t.{q(c)}"
        kind, _, args = dtype.upper().partition("(")
        kind = kind.strip()
        if kind == "VARCHAR":  # any JSON value converts to text; only its length can fail
            out.append((f"(strlen({col}) > {VARCHAR_MAX_BYTES})",
                        f"the value of {c} is longer than the {VARCHAR_MAX_BYTES} bytes a warehouse VARCHAR "
                        "holds (Redshift's limit)"))
            continue
        out.append((f"({col} IS NULL AND {text} IS NOT NULL)",
                    f"the value of {c} does not convert to the raw column's {dtype} (type changed in the source?)"))
        if kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DECIMAL", "NUMERIC"):
            nums = [int(a) for a in args.rstrip(")").split(",") if a.strip().isdigit()]
            scale = nums[1] if kind in ("DECIMAL", "NUMERIC") and len(nums) > 1 else 0
            # A DOUBLE comparison sees a changed value, except past double precision (16 digits);
            # a non-zero digit past the column's scale in the text sees that (plain notation).
            out.append((f"({col} IS NOT NULL AND (TRY_CAST({text} AS DOUBLE) IS DISTINCT FROM CAST({col} AS DOUBLE) "
                        f"OR (NOT contains(lower({text}), 'e') "
                        f"AND length(rtrim(split_part({text}, '.', 2), '0')) > {scale})))",
                        f"the value of {c} would change in the raw column's {dtype} (wider in the source?)"))
        elif kind == "DATE":
            out.append((f"({col} IS NOT NULL AND TRY_CAST({text} AS TIMESTAMP) IS DISTINCT FROM CAST({col} AS TIMESTAMP))",
                        f"the value of {c} has a time of day the raw column's DATE would drop"))
        elif kind == "BOOLEAN":
            out.append((f"({col} IS NOT NULL AND lower({text}) NOT IN ('true', 'false', '0', '1'))",
                        f"the value of {c} is not a boolean"))
    return out


def _duck_type(t: str) -> str:
    # DuckDB's VARCHAR has no length; a length in the DDL is accepted but meaningless.
    return "VARCHAR" if t.upper().startswith("VARCHAR") else t


class DuckDBEngine:
    dialect = "duckdb"
    placeholder = "?"

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
            for schema in {self.raw_schema, self.mart_schema}:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}")
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {q(self.raw_schema)}.{q(LEDGER_TABLE)} ("
                "topic VARCHAR NOT NULL, partition INTEGER NOT NULL, first_offset BIGINT NOT NULL, "
                "last_offset BIGINT NOT NULL, message_count INTEGER NOT NULL, landed_rows INTEGER NOT NULL, "
                "rejected_rows INTEGER NOT NULL, landed_at TIMESTAMP NOT NULL)"
            )
            for col, typ in (("batch_id", "VARCHAR"), ("merged_at", "TIMESTAMP")):
                con.execute(f"ALTER TABLE {q(self.raw_schema)}.{q(LEDGER_TABLE)} ADD COLUMN IF NOT EXISTS {col} {typ}")
            con.execute(replays_ddl(self.raw_schema))
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {q(self.mart_schema)}.{q(EXCEPTIONS_TABLE)} ("
                "order_id BIGINT, exception_type VARCHAR NOT NULL, detected_at TIMESTAMP NOT NULL, "
                "notes VARCHAR, resolved_at TIMESTAMP, resolution_notes VARCHAR, source_table VARCHAR, "
                "kafka_topic VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT)"
            )
            con.execute(f"ALTER TABLE {q(self.mart_schema)}.{q(EXCEPTIONS_TABLE)} ADD COLUMN IF NOT EXISTS resolved_by VARCHAR")
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {q(self.raw_schema)}.{q(JOB_RUNS_TABLE)} ("
                "run_id VARCHAR NOT NULL, job VARCHAR NOT NULL, scheduled_for TIMESTAMP NOT NULL, "
                "started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, status VARCHAR NOT NULL, "
                "figures VARCHAR, error VARCHAR, host VARCHAR)"
            )

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

    def next_offsets(self, topic: str) -> dict[int, int]:
        rows = self.query(f"SELECT partition, resume FROM ({positions_relation(self.raw_schema, '?')}) AS p", [topic, topic])
        return {int(p): int(o) for p, o in rows}

    @_retry_on_lock
    def land(self, spec: TableSpec, topic: str, staged: pa.Table, after: AfterLanding | None = None,
             before_commit: BeforeCommit | None = None, misfits: Misfits = "reject",
             expected: dict[int, int] | None = None) -> LandResult:
        batch_id = uuid.uuid4().hex
        columns = self.raw_columns(spec)
        source_cols = [c for c in columns if not c.startswith("_")]
        if not source_cols:
            raise ConfigError(f"Raw table {spec.raw_schema}.{spec.raw_table} does not exist yet.")
        structure = orjson.dumps({c: _json_type(columns[c]) for c in source_cols}).decode()
        # The values as text, for the checks of the columns that are not text already.
        as_text = orjson.dumps({c: "VARCHAR" for c in source_cols if not columns[c].upper().startswith("VARCHAR")}
                               or {source_cols[0]: "VARCHAR"}).decode()
        raw = f"{q(spec.raw_schema)}.{q(spec.raw_table)}"
        ledger = f"{q(self.raw_schema)}.{q(LEDGER_TABLE)}"
        key_null = " OR ".join(f"r.{q(k)} IS NULL" for k in spec.key_columns)
        key_missing = " OR ".join(f"COALESCE(json_type(j, '$.{k}'), 'NULL') = 'NULL'" for k in spec.key_columns)
        checks = _misfits({c: columns[c] for c in source_cols})
        misfit_reason = " ".join(f"WHEN {cond} THEN {_lit(reason)}" for cond, reason in checks)
        with self.connection() as con:
            con.register("staged_batch", staged)
            try:
                con.execute("BEGIN TRANSACTION")
                positions = positions_relation(self.raw_schema, "$topic")
                now_at = con.execute(f"SELECT partition, resume, hole_next FROM ({positions}) AS p",
                                     {"topic": topic}).fetchall()
                check_not_rewound(topic, {int(p): int(o) for p, o, _ in now_at}, expected)
                holes = any(h is not None for _, _, h in now_at)
                declared = list(expected or ())
                con.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE fresh AS
                    WITH nxt AS ({positions}), todo AS (
                        -- Offsets already landed are skipped (repeats were dropped in staging).
                        SELECT b.partition, b."offset", b.window_id, b.reject_reason, try(decode(b.value)) AS txt,
                               b.value
                        FROM staged_batch b LEFT JOIN nxt ON nxt.partition = b.partition
                        WHERE {lands("b", "nxt", declared)}
                    ), parsed AS (
                        SELECT partition, "offset", window_id, value, txt,
                               reject_reason IS NULL AND txt IS NOT NULL AND try(json_valid(txt)) AS ok,
                               CASE WHEN reject_reason IS NOT NULL THEN reject_reason
                                    WHEN txt IS NULL THEN 'value is not UTF-8 text' END AS early_reason
                        FROM todo
                    )
                    SELECT partition, "offset", window_id, value, CASE WHEN ok THEN txt END AS j,
                           CASE WHEN ok THEN json_transform(txt, '{structure}') END AS r,
                           CASE WHEN ok THEN json_transform(txt, '{as_text}') END AS t,
                           COALESCE(early_reason, CASE WHEN NOT ok THEN 'value is not valid JSON' END) AS reason
                    FROM parsed
                    """,
                    {"topic": topic},
                )
                con.execute(
                    f"""UPDATE fresh SET reason = CASE
                          WHEN {key_missing} THEN 'key column(s) {", ".join(spec.key_columns)} missing or NULL'
                          {misfit_reason} END
                        WHERE reason IS NULL AND ({key_null} OR {" OR ".join(cond for cond, _ in checks)})"""
                )
                if misfits == "raise":
                    found = con.execute("SELECT DISTINCT split_part(reason, ' ', 4) FROM fresh "
                                        "WHERE starts_with(reason, 'the value of ')").fetchall()
                    if found:
                        raise MisfitColumns({c for (c,) in found})
                total, rejected = con.execute(
                    "SELECT COUNT(*), COUNT(*) FILTER (WHERE reason IS NOT NULL) FROM fresh"
                ).fetchone()
                skipped = staged.num_rows - total
                if holes:  # offsets re-landed into a replay's hole replace their raw rows
                    con.execute(replaced_rows(raw, "$topic", "fresh", positions), {"topic": topic})
                cols = ", ".join(q(c) for c in source_cols)
                con.execute(
                    f"""INSERT INTO {raw} ({cols}, _kafka_topic, _kafka_partition, _kafka_offset, _window_id, _ingested_at, _batch_id)
                        SELECT {", ".join(f"r.{q(c)}" for c in source_cols)}, $topic, partition, "offset", window_id,
                               CAST(now() AS TIMESTAMP), $batch_id
                        FROM fresh WHERE reason IS NULL""",
                    {"topic": topic, "batch_id": batch_id},
                )
                rejects = con.execute(
                    """SELECT partition, "offset", reason, try(decode(value))
                       FROM fresh WHERE reason IS NOT NULL ORDER BY partition, "offset" """
                ).fetchall()
                if rejects:
                    exc = f"{q(self.mart_schema)}.{q(EXCEPTIONS_TABLE)}"
                    # Guarded: never a second open row for the same message.
                    con.execute(
                        f"""INSERT INTO {exc}
                            (order_id, exception_type, detected_at, notes, source_table, kafka_topic, kafka_partition, kafka_offset)
                            SELECT TRY_CAST(json_extract_string(f.j, '$.order_id') AS BIGINT), 'dead_letter',
                                   CAST(now() AS TIMESTAMP), f.reason, $table, $topic, f.partition, f."offset"
                            FROM fresh f
                            WHERE f.reason IS NOT NULL AND NOT EXISTS (
                              SELECT 1 FROM {exc} e WHERE e.exception_type = 'dead_letter' AND e.resolved_at IS NULL
                                AND e.kafka_topic = $topic AND e.kafka_partition = f.partition AND e.kafka_offset = f."offset")""",
                        {"table": spec.name, "topic": topic},
                    )
                con.execute(
                    f"""INSERT INTO {ledger} (topic, partition, first_offset, last_offset, message_count, landed_rows,
                                             rejected_rows, landed_at, batch_id, merged_at)
                        SELECT $topic, partition, MIN("offset"), MAX("offset"), COUNT(*),
                               COUNT(*) FILTER (WHERE reason IS NULL), COUNT(*) FILTER (WHERE reason IS NOT NULL),
                               CAST(now() AS TIMESTAMP), $batch_id,
                               CASE WHEN $merged THEN CAST(now() AS TIMESTAMP) END
                        FROM fresh GROUP BY partition""",
                    {"topic": topic, "batch_id": batch_id, "merged": after is not None},
                )
                if holes:
                    con.execute(advance_holes(self.raw_schema, "$topic", "staged_batch", "CAST(now() AS TIMESTAMP)",
                                              declared), {"topic": topic})
                if after is not None:
                    try:
                        after(_executor(con), spec, batch_id)
                    except Exception as exc:
                        if _busy(exc):
                            raise  # not the merge's fault: the whole landing is redone
                        raise MergeFailed() from exc
                rejected_rows = [{"partition": p, "offset": o, "reason": r, "value": v} for p, o, r, v in rejects]
                if before_commit is not None and rejected_rows:
                    before_commit(rejected_rows)
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise
            finally:
                con.unregister("staged_batch")
        return LandResult(
            landed=int(total - rejected),
            skipped=int(skipped),
            rejected=rejected_rows,
            batch_id=batch_id,
            merged=after is not None,
        )

    @_retry_on_lock
    def in_transaction(self, fn: Callable[[Execute], T]) -> T:
        with self.connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                out = fn(_executor(con))
                con.execute("COMMIT")
                return out
            except BaseException:
                _rollback(con)
                raise

    def unmerged_batches(self, topic: str) -> list[str]:
        rows = self.query(
            f"SELECT batch_id FROM {q(self.raw_schema)}.{q(LEDGER_TABLE)} WHERE topic = ? AND merged_at IS NULL "
            "AND batch_id IS NOT NULL GROUP BY batch_id ORDER BY MIN(landed_at), MIN(first_offset)",
            [topic],
        )
        return [r[0] for r in rows]

    def mark_merged(self, execute: Execute, batch_id: str) -> None:
        execute(f"UPDATE {q(self.raw_schema)}.{q(LEDGER_TABLE)} SET merged_at = CAST(now() AS TIMESTAMP) "
                "WHERE batch_id = $batch_id", {"batch_id": batch_id})

    @_retry_on_lock
    def unknown_keys(self, spec: TableSpec, staged: pa.Table) -> set[str]:
        known = set(self.raw_columns(spec))
        with self.connection() as con:
            con.register("keys_batch", staged)
            try:
                rows = con.execute(
                    "SELECT DISTINCT unnest(json_keys(txt)) FROM (SELECT try(decode(value)) AS txt FROM keys_batch "
                    "WHERE reject_reason IS NULL) WHERE try(json_valid(txt))"
                ).fetchall()
            finally:
                con.unregister("keys_batch")
        return {k for (k,) in rows} - known

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


def _executor(con: duckdb.DuckDBPyConnection) -> Execute:
    def execute(sql: str, params: dict[str, Any]) -> list[tuple]:
        # DuckDB refuses named parameters a statement does not use.
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        cur = con.execute(sql, used) if used else con.execute(sql)
        return cur.fetchall() if cur.description else []

    return execute


def _json_type(t: str) -> str:
    t = t.upper()
    if t.startswith("DECIMAL"):
        return t
    return {"INTEGER": "INTEGER", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN",
            "DATE": "DATE", "TIMESTAMP": "TIMESTAMP"}.get(t, "VARCHAR")
