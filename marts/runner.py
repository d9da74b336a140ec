"""Renders the mart SQL (written once, Redshift dialect) for the engine in use, and runs it.

The `.sql` files use placeholders that the runner fills by editing the parsed tree, never by
formatting strings:

* tables `__raw__`, `__mart__`, `__hist__`, `__orders_mart__`, `__exceptions__`; `__history__`
  becomes the UNION ALL of every history table of the mart found in the catalog;
* the column `__cursor__` becomes the table's cursor column, `PARTITION BY __key__` its key;
* `KEY_MATCH(a, b)` becomes `a.k1 = b.k1 AND a.k2 = b.k2`; `KEY_PRESENT(m)` that no key column
  of `m` is NULL (such a row could never be matched, so it is never archived); `ARCHIVABLE(m)` is TRUE, except for
  orders: only those whose order_id is no longer in the tracking mart (a NULL-safe anti-join);
* `:name` values stay bound parameters.

Order inside a landing transaction: tracking info first (it decides reactivations), then orders,
then scan events (the registry order of `MERGE_ORDER`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from marts import SQL_DIR
from ordertrack.identifiers import quote_ansi as _q
from ordertrack.identifiers import validate_identifier
from ordertrack.log import get_logger
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, Execute, WarehouseEngine
from ordertrack.warehouse.sqlfiles import SOURCE_DIALECT, first_per_key, transpile, union_all
from ordertrack.warehouse.sqlfiles import table as _table
from ordertrack.warehouse.types import catalog_type, widened

log = get_logger(__name__)

MERGE_ORDER = ("uni_tracking_info", "ecs_order_info", "uni_tracking_spath")
TRACKING, ORDERS, SCAN_EVENTS = MERGE_ORDER
HISTORY_DAYS = 180
# Redshift layout of the old dbt models: rows of an order together, sorted as analysts filter.
MART_SORTKEYS = {
    "uni_tracking_info": ("update_time", "order_id"),
    "ecs_order_info": ("partner_id", "add_time", "order_id"),
    "uni_tracking_spath": ("pathTime", "order_id"),
}



@dataclass(frozen=True)
class Period:
    name: str  # 2026_h1
    start: int
    end: int


def half_year(ts: int) -> Period:
    d = datetime.fromtimestamp(ts, timezone.utc)
    h = 1 if d.month <= 6 else 2
    start = datetime(d.year, 1 if h == 1 else 7, 1, tzinfo=timezone.utc)
    end = datetime(d.year + (h == 2), 7 if h == 1 else 1, 1, tzinfo=timezone.utc)
    return Period(f"{d.year}_h{h}", int(start.timestamp()), int(end.timestamp()))


def hist_table(spec: TableSpec, period: Period) -> str:
    return validate_identifier(f"hist_{spec.name}_{period.name}")


class MartSql:
    """Renders one mart's statements for a dialect."""

    def __init__(self, spec: TableSpec, registry: TableRegistry, dialect: str, history: list[str]) -> None:
        self.spec = spec
        self.registry = registry
        self.dialect = dialect
        self.history = history  # history tables of this mart, from the catalog

    def tables(self) -> dict[str, tuple[str, str]]:
        s = self.spec
        orders = self.registry.get(ORDERS)
        return {
            "__raw__": (s.raw_schema, s.raw_table),
            "__mart__": (s.mart_schema, s.mart_table),
            "__orders_mart__": (orders.mart_schema, orders.mart_table),
            "__exceptions__": (s.mart_schema, EXCEPTIONS_TABLE),
        }

    def render(self, path: Path, hist: str | None = None) -> str:
        tree = sqlglot.parse_one(path.read_text(), read=SOURCE_DIALECT)
        s, tables = self.spec, self.tables()
        if hist:
            tables["__hist__"] = (s.mart_schema, hist)
        cursor = s.cursor_column

        def history_union() -> exp.Expr:
            if not self.history:  # no history yet: an empty relation with the mart's columns
                return exp.select("*").from_(_table(s.mart_schema, s.mart_table)).where(exp.false())
            return union_all([(s.mart_schema, n) for n in self.history])

        def key_match(a: str, b: str) -> exp.Expr:
            return exp.and_(*[exp.EQ(this=exp.column(k, table=a, quoted=True), expression=exp.column(k, table=b, quoted=True))
                              for k in s.key_columns])

        def transform(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Table) and node.name == "__history__":
                alias = node.alias
                return exp.Subquery(this=history_union(), alias=exp.TableAlias(this=exp.to_identifier(alias)))
            if isinstance(node, exp.Table) and node.name in tables:
                schema, name = tables[node.name]
                return _table(schema, name, node.alias or None)
            if isinstance(node, exp.Column):
                table = node.table
                if table in tables:  # a column qualified by a placeholder table: the bare table name
                    table = tables[table][1]
                name = cursor if node.name == "__cursor__" else node.name
                if name != node.name or table != node.table:
                    return exp.column(name, table=table or None, quoted=True)
            if isinstance(node, exp.Anonymous) and node.name.upper() == "KEY_MATCH":
                a, b = (arg.name for arg in node.expressions)
                a, b = (tables[x][1] if x in tables else x for x in (a, b))
                return key_match(a, b)
            if isinstance(node, exp.Anonymous) and node.name.upper() in ("NEWER", "NEWER_OR_SAME"):
                a, b = (arg.name for arg in node.expressions)
                a, b = (tables[x][1] if x in tables else x for x in (a, b))
                return self._newer(a, b, or_same=node.name.upper() == "NEWER_OR_SAME")
            if isinstance(node, exp.Anonymous) and node.name.upper() in ("DELETE_EVENT", "HARD_DELETE"):
                # DELETE_EVENT: the version is a source delete; HARD_DELETE: ... and it removes the key.
                if not s.binlog or (node.name.upper() == "HARD_DELETE" and s.deletes != "hard"):
                    return exp.false()
                return exp.Paren(this=sqlglot.parse_one(f"COALESCE({_q(node.expressions[0].name)}.cdc_op, '') = 'd'",
                                                        read=SOURCE_DIALECT))
            if isinstance(node, exp.Order) and any(isinstance(o.this, exp.Anonymous) and o.this.name.upper() == "NEWEST_FIRST"
                                                    for o in node.expressions):
                r = node.expressions[0].this.expressions[0].name
                # The same order NEWER decides by, so a batch's latest is the one NEWER would keep.
                columns = ["cdc_file", "cdc_pos", "cdc_row"] if s.binlog else [cursor]
                order = ", ".join(f"{_q(r)}.{_q(c)} DESC" for c in (*columns, "_kafka_offset"))
                return sqlglot.parse_one(f"SELECT 1 ORDER BY {order}", read=SOURCE_DIALECT).args["order"]
            if isinstance(node, exp.Anonymous) and node.name.upper() == "KEY_PRESENT":
                m = node.expressions[0].name
                return exp.and_(*[exp.Not(this=exp.Is(this=exp.column(k, table=m, quoted=True), expression=exp.Null()))
                                  for k in s.key_columns])
            if isinstance(node, exp.Anonymous) and node.name.upper() == "ARCHIVABLE":
                if s.name != ORDERS:
                    return exp.true()
                tracking = self.registry.get(TRACKING)
                m = node.expressions[0].name
                # NOT EXISTS, not NOT IN: a NULL order_id in the tracking mart must not hide every order.
                return exp.Not(this=exp.Exists(this=exp.select("1").from_(_table(tracking.mart_schema, tracking.mart_table, "t"))
                               .where(exp.EQ(this=exp.column("order_id", table="t", quoted=True),
                                             expression=exp.column("order_id", table=m, quoted=True)))))
            if isinstance(node, exp.Window) and any(isinstance(p, exp.Column) and p.name == "__key__"
                                                    for p in node.args.get("partition_by") or []):
                node.set("partition_by", [exp.column(k, quoted=True) for k in s.key_columns])
            return node

        return first_per_key(tree.transform(transform), self.dialect).sql(dialect=self.dialect)

    def _newer(self, a: str, b: str, or_same: bool) -> exp.Expr:
        """`a` is a newer version of the key than `b` (or the same message, with `or_same`). Poller
        rows: greater cursor, then later Kafka offset. Change events: later binlog position (file,
        position, row in the event), so two updates in one second still end with the later one
        and a snapshot read never overrides a change made after the snapshot began. A change event
        beside a poller row (a table switched between the two) compares by cursor, and on equal
        cursors the change event wins: it has seen every write."""
        cmp = ">=" if or_same else ">"

        def col(t: str, name: str) -> str:
            return f"{_q(t)}.{_q(name)}"

        def later(columns: list[str], last_cmp: str) -> str:
            """(a.c1, a.c2, ...) > (b.c1, b.c2, ...) spelled out: Redshift has no row comparison."""
            head, rest = columns[0], columns[1:]
            if not rest:
                return f"{col(a, head)} {last_cmp} {col(b, head)}"
            return f"({col(a, head)} > {col(b, head)} OR ({col(a, head)} = {col(b, head)} AND {later(rest, last_cmp)}))"

        cursor = self.spec.cursor_column
        if not self.spec.binlog:
            return exp.Paren(this=sqlglot.parse_one(later([cursor, "_kafka_offset"], cmp), read=SOURCE_DIALECT))
        af, bf = col(a, "cdc_file"), col(b, "cdc_file")
        by_position = later(["cdc_file", "cdc_pos", "cdc_row", "_kafka_offset"], cmp)
        ac, bc = col(a, cursor), col(b, cursor)
        # A change event beside a poller row: the change event wins unless the poller's cursor is
        # greater (a NULL cursor cannot say so); two poller rows: the poller's own rule.
        event_wins = f"({ac} >= {bc} OR {ac} IS NULL OR {bc} IS NULL)"
        return exp.Paren(this=sqlglot.parse_one(
            f"({af} IS NOT NULL AND {bf} IS NOT NULL AND {by_position}) "
            f"OR ({af} IS NOT NULL AND {bf} IS NULL AND {event_wins}) "
            f"OR ({af} IS NULL AND {bf} IS NOT NULL AND {ac} > {bc}) "
            f"OR ({af} IS NULL AND {bf} IS NULL AND {later([cursor, '_kafka_offset'], cmp)})",
            read=SOURCE_DIALECT))


def history_tables(execute: Execute, dialect: str, spec: TableSpec) -> list[str]:
    """The half-year history tables of a mart found in the catalog, oldest first."""
    sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema AND table_name LIKE :pattern "
           "ORDER BY table_name")
    rows = execute(transpile(sql, dialect),
                   {"schema": spec.mart_schema, "pattern": f"hist_{spec.name}_%"})
    pattern = re.compile(rf"^hist_{re.escape(spec.name)}_\d{{4}}_h[12]$")
    return [r[0] for r in rows if pattern.match(r[0])]


BATCH_LATEST = SQL_DIR / "merge" / "10_batch_latest.sql"


def merge_files(table: str) -> list[Path]:
    files = sorted((SQL_DIR / "merge").glob("*.sql"))
    if table != TRACKING:  # reactivation is decided by tracking updates only
        files = [f for f in files if not re.match(r"(20|60|61|70|91)_", f.name)]
    return files


class MartRunner:
    """Merges landed batches into the marts and archives history, inside the caller's transaction."""

    def __init__(self, registry: TableRegistry, dialect: str) -> None:
        self.registry = registry
        self.dialect = dialect

    # -- catalog -----------------------------------------------------------------------------------
    def history_tables(self, execute: Execute, spec: TableSpec) -> list[str]:
        return history_tables(execute, self.dialect, spec)

    def mart_ddl(self, spec: TableSpec, table: str | None = None) -> str:
        """An empty table with the raw table's columns, in the same order (mart or history)."""
        target = f"{_q(spec.mart_schema)}.{_q(table or spec.mart_table)}"
        raw = f"{_q(spec.raw_schema)}.{_q(spec.raw_table)}"
        if self.dialect == "redshift":
            sort = ", ".join(_q(c) for c in MART_SORTKEYS.get(spec.name, spec.key_columns))
            return f"CREATE TABLE IF NOT EXISTS {target} (LIKE {raw}) DISTKEY(\"order_id\") COMPOUND SORTKEY({sort})"
        return sqlglot.transpile(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {raw} WHERE 1 = 0",
                                 read=SOURCE_DIALECT, write=self.dialect)[0]

    def ensure_mart(self, execute: Execute, spec: TableSpec) -> None:
        """The mart has the raw table's columns (the same order), created empty from it."""
        execute(self.mart_ddl(spec), {})
        self.sync_columns(execute, spec, [spec.mart_table, *self.history_tables(execute, spec)])

    def sync_columns(self, execute: Execute, spec: TableSpec, tables: list[str]) -> None:
        """Columns added to the raw table are added to the mart and every history table, and
        columns raw has widened are widened there, before any row moves: an INSERT into a
        narrower column would round or cut the value."""
        raw = self._columns(execute, spec.raw_schema, spec.raw_table)
        for t in tables:
            have = self._columns(execute, spec.mart_schema, t)
            table = f"{_q(spec.mart_schema)}.{_q(t)}"
            for name, dtype in raw.items():
                if name not in have:  # the type text comes from the engine's own catalog
                    execute(f"ALTER TABLE {table} ADD COLUMN {_q(name)} {dtype}", {})
                elif self.dialect != "redshift" and (wider := widened(have[name], dtype)) is not None:
                    # Redshift cannot alter a column type inside a transaction block: its engine
                    # widens the mart and history VARCHARs when it widens raw, in autocommit.
                    execute(f"ALTER TABLE {table} ALTER COLUMN {_q(name)} SET DATA TYPE {wider}", {})

    def _columns(self, execute: Execute, schema: str, table: str) -> dict[str, str]:
        rows = self._run(execute, "SELECT column_name, data_type, character_maximum_length, numeric_precision, "
                         "numeric_scale FROM information_schema.columns WHERE table_schema = :s "
                         "AND table_name = :t ORDER BY ordinal_position", {"s": schema, "t": table})
        return {n: catalog_type(d, length, precision, scale) for n, d, length, precision, scale in rows}

    def _run(self, execute: Execute, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        """Inline SQL is written in the source dialect too, and rendered like the files."""
        return execute(transpile(sql, self.dialect), params or {})

    # -- merge -------------------------------------------------------------------------------------
    def merge_batch(self, execute: Execute, spec: TableSpec, batch_id: str | None, latest: Path = BATCH_LATEST,
                    before_apply: Callable[[Execute], None] | None = None) -> None:
        """Merge one landed batch of `spec` into its mart (and heal reactivations).

        `latest` is the file that builds `batch_latest`, the versions to merge (`marts rebuild`
        swaps in one over all of raw); `before_apply` runs once they are known, just before the
        first statement that changes a mart or its history (the rebuild counts there, or empties)."""
        self.ensure_mart(execute, spec)
        history = self.history_tables(execute, spec)
        orders = self.registry.get(ORDERS)
        orders_history = self.history_tables(execute, orders) if spec.name == TRACKING else []
        if spec.name == TRACKING:
            self.ensure_mart(execute, orders)
        sql = MartSql(spec, self.registry, self.dialect, history)
        for f in merge_files(spec.name):
            if f == BATCH_LATEST:
                f = latest
            if f.name.startswith("30_") and before_apply is not None:
                before_apply(execute)
            if f.name.startswith("40_"):
                for h in history:
                    execute(sql.render(f, hist=h), {"batch_id": batch_id})
            elif f.name.startswith(("60_", "61_")):
                orders_sql = MartSql(orders, self.registry, self.dialect, orders_history)
                for h in orders_history:
                    execute(orders_sql.render(f, hist=h), {})
            else:
                execute(sql.render(f), {"batch_id": batch_id})

    # -- history -----------------------------------------------------------------------------------
    def archive(self, execute: Execute, spec: TableSpec, days: int = HISTORY_DAYS) -> dict[str, int]:
        """Move rows older than `days` before the mart's newest cursor into half-year history
        tables, created when first needed. Insert, verify, delete: a retry moves nothing twice."""
        self.ensure_mart(execute, spec)
        mart = f"{_q(spec.mart_schema)}.{_q(spec.mart_table)}"
        c = _q(spec.cursor_column)
        newest, oldest = self._run(execute, f"SELECT MAX({c}), MIN({c}) FROM {mart}")[0]
        if newest is None:
            return {}
        cutoff = int(newest) - days * 86400
        moved: dict[str, int] = {}
        period = half_year(int(oldest))
        while period.start < cutoff:
            due = self._run(execute, f"SELECT COUNT(*) FROM {mart} WHERE {c} >= :a AND {c} < :b AND {c} < :cutoff",
                            {"a": period.start, "b": period.end, "cutoff": cutoff})[0][0]
            if due:
                moved[period.name] = self._archive_period(execute, spec, period, cutoff)
            period = half_year(period.end)
        return {k: v for k, v in moved.items() if v}

    def _archive_period(self, execute: Execute, spec: TableSpec, period: Period, cutoff: int) -> int:
        hist = hist_table(spec, period)
        execute(self.mart_ddl(spec, hist), {})
        sql = MartSql(spec, self.registry, self.dialect, self.history_tables(execute, spec))
        params = {"period_start": period.start, "period_end": period.end, "cutoff": cutoff}
        execute(sql.render(SQL_DIR / "history" / "10_archive_insert.sql", hist=hist), params)
        missing = execute(sql.render(SQL_DIR / "history" / "20_archive_unverified.sql", hist=hist), params)[0][0]
        if missing:
            raise RuntimeError(f"{missing} rows of {spec.mart_table} {period.name} did not reach {hist}; nothing deleted")
        count = f"SELECT COUNT(*) FROM {_q(spec.mart_schema)}.{_q(spec.mart_table)}"
        before = self._run(execute, count)[0][0]
        execute(sql.render(SQL_DIR / "history" / "30_archive_delete.sql", hist=hist), params)
        after = self._run(execute, count)[0][0]
        if before - after:
            log.info("marts.archived", mart=spec.mart_table, history=hist, rows=before - after)
        return before - after

    # -- the step run inside every landing transaction ---------------------------------------------
    def after_landing(self, execute: Execute, spec: TableSpec, batch_id: str) -> None:
        # Archival reads the whole mart, so it is periodic (the scheduler's `archive` job, and the
        # end of `run-once`), not per batch; merging handles keys that are already in history.
        self.merge_batch(execute, spec, batch_id)


def merge_unmerged(engine: WarehouseEngine, registry: TableRegistry) -> dict[str, int]:
    """Merge every batch that landed unmerged (its merge failed), oldest first, each in its own
    transaction with its ledger mark; returns batches merged per table. Newer wins, so merging an
    old batch after newer ones never moves a mart back."""
    from ordertrack.warehouse.pending import merge_pending

    runner = MartRunner(registry, engine.dialect)
    merged: dict[str, int] = {}
    for name in MERGE_ORDER:
        spec = registry.get(name)
        merged[spec.name] = merge_pending(engine, spec, runner.after_landing)
        if merged[spec.name]:
            log.info("marts.unmerged_batches.merged", table=spec.name, batches=merged[spec.name])
    return merged

