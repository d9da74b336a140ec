"""`dq reconcile`: the source table and its mart (with history) compared key by key.

As data-diff does: both sides are cut into ranges of the first key column, and each range is
summed up on its own side as (row count, sum of a hash of key and cursor), so only a few numbers
per range cross the network. Ranges whose sums differ are cut again, until they are small enough
to fetch and compare row by row. Identical ranges cost one aggregate each; a table of tens of
millions of rows with a handful of differences reads each side about once.

The hash is the first 32 bits of MD5 over `key|...|cursor`, the same text on MySQL, DuckDB, PostgreSQL and
Redshift; a row version is its key and its cursor, so a row whose cursor matches but whose other
columns differ is not seen (the cursor is what every change moves).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ordertrack.identifiers import quote_ansi, quote_mysql
from ordertrack.progress import Progress
from ordertrack.tables import TableSpec

FANOUT = 64
LEAF_ROWS = 2000


class Side(Protocol):
    name: str

    def bounds(self) -> tuple[int, int] | None:
        """Lowest and highest first-key value (None when empty)."""

    def chunk_sums(self, lo: int, hi: int, step: int) -> dict[int, tuple[int, int]]:
        """Bucket -> (rows, hash sum) for first-key values in [lo, hi), bucket = (k - lo) // step."""

    def rows(self, lo: int, hi: int) -> dict[tuple, int]:
        """Key -> cursor for first-key values in [lo, hi)."""

    def lookup(self, keys: Iterable[tuple]) -> dict[tuple, int]:
        """Key -> cursor for these keys, ignoring the `since` and `until` filters."""


@dataclass
class ReconcileResult:
    table: str
    missing: list[dict[str, Any]] = field(default_factory=list)  # in the source, not in the mart
    extra: list[dict[str, Any]] = field(default_factory=list)    # in the mart, not in the source
    stale: list[dict[str, Any]] = field(default_factory=list)    # in both, cursors differ
    ranges_compared: int = 0
    rows_fetched: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.stale)


def reconcile(table: str, key_columns: tuple[str, ...], source: Side, target: Side, *, since: int | None = None,
              until: int | None = None, fanout: int = FANOUT, leaf_rows: int = LEAF_ROWS,
              progress: Progress | None = None) -> ReconcileResult:
    """Compare the versions with since <= cursor < until on both sides (each side filters itself).
    `progress`, if given, counts the span of first-key values settled, of the whole range."""
    result = ReconcileResult(table)
    b = [x for x in (source.bounds(), target.bounds()) if x is not None]
    if not b:
        return result
    lo, hi = min(x[0] for x in b), max(x[1] for x in b) + 1
    if progress is not None:
        progress.update(total=hi - lo)
    src_rows: dict[tuple, int] = {}
    tgt_rows: dict[tuple, int] = {}

    def settle(upto: int, settled: int) -> int:
        """Progress: first-key values below `upto` are compared (equal, empty or fetched)."""
        if progress is not None and upto > settled:
            progress.advance(upto - settled, ranges=result.ranges_compared, rows_fetched=result.rows_fetched)
        return max(upto, settled)

    def walk(lo: int, hi: int) -> None:
        step = max(1, math.ceil((hi - lo) / fanout))
        s, t = source.chunk_sums(lo, hi, step), target.chunk_sums(lo, hi, step)
        result.ranges_compared += 1
        settled = lo
        for bucket in sorted(set(s) | set(t)):
            if s.get(bucket) == t.get(bucket):
                continue
            blo = lo + bucket * step
            bhi = min(hi, blo + step)
            rows = max(s.get(bucket, (0, 0))[0], t.get(bucket, (0, 0))[0])
            if rows <= leaf_rows or step == 1:
                a, c = source.rows(blo, bhi), target.rows(blo, bhi)
                result.rows_fetched += len(a) + len(c)
                src_rows.update(a)
                tgt_rows.update(c)
                settled = settle(bhi, settled)
            else:
                settled = settle(blo, settled)
                walk(blo, bhi)  # settles [blo, bhi) itself
                settled = bhi
        settle(hi, settled)

    walk(lo, hi)
    missing = sorted(k for k in src_rows if k not in tgt_rows)
    extra = sorted(k for k in tgt_rows if k not in src_rows)
    stale = sorted(k for k in src_rows if k in tgt_rows and src_rows[k] != tgt_rows[k])
    if since is not None or until is not None:
        # A key filtered out on one side may still be there with another cursor: older than
        # `since` is a stale version; newer than `until` is a change the pipeline has not had the
        # chance to carry yet (or, on the mart's side, one it carried while this ran), not a finding.
        in_target = target.lookup(missing)
        in_source = source.lookup(extra)
        moved_on = [k for k in missing if until is not None and in_target.get(k, -1) >= until]
        now_in_source = source.lookup(moved_on)
        for k in list(missing):
            if k not in in_target:
                continue
            missing.remove(k)
            if k in moved_on and until is not None and (k not in now_in_source or now_in_source[k] >= until):
                continue  # the source changed after it was read: both sides are past the bound now
            stale.append(k)
            tgt_rows[k] = in_target[k]
        for k in list(extra):
            if k not in in_source:
                continue
            extra.remove(k)
            if until is not None and in_source[k] >= until:
                continue  # changed in the source after the bound: its turn comes
            stale.append(k)
            src_rows[k] = in_source[k]
    as_dict = lambda k: dict(zip(key_columns, k))  # noqa: E731
    result.missing = [{**as_dict(k), "source_cursor": src_rows[k]} for k in missing]
    result.extra = [{**as_dict(k), "mart_cursor": tgt_rows[k]} for k in extra]
    result.stale = [{**as_dict(k), "source_cursor": src_rows[k], "mart_cursor": tgt_rows[k]} for k in sorted(stale)]
    return result


# -- the two kinds of side ----------------------------------------------------------------------------
class SqlSide:
    """One side as SQL over a DB-API style `query(sql, params)`; the dialect decides the hash."""

    def __init__(self, name: str, query, spec: TableSpec, relation: str, dialect: str, since: int | None,  # noqa: ANN001
                 until: int | None = None) -> None:
        self.name, self._query, self.spec, self.relation, self.dialect = name, query, spec, relation, dialect
        quote = quote_mysql if dialect == "mysql" else quote_ansi
        self.ph = {"mysql": "%s", "duckdb": "?", "postgres": "%s", "redshift": "%s"}[dialect]
        self.keys = [quote(k) for k in spec.key_columns]
        self.first = self.keys[0]
        self.cursor = quote(spec.cursor_column)
        self.since, self.until = since, until

    def _filter(self) -> tuple[str, list]:
        sql, params = "", []
        if self.since is not None:
            sql, params = f" AND {self.cursor} >= {self.ph}", [self.since]
        if self.until is not None:
            sql, params = sql + f" AND {self.cursor} < {self.ph}", [*params, self.until]
        return sql, params

    def _hash(self) -> str:
        cols = [*self.keys, self.cursor]
        if self.dialect == "mysql":
            return f"CAST(CONV(SUBSTRING(MD5(CONCAT_WS('|', {', '.join(cols)})), 1, 8), 16, 10) AS UNSIGNED)"
        if self.dialect == "duckdb":
            return f"CAST('0x' || substr(md5(concat_ws('|', {', '.join(cols)})), 1, 8) AS BIGINT)"
        text = " || '|' || ".join(f"CAST({c} AS VARCHAR)" for c in cols)
        if self.dialect == "postgres":  # 8 hex digits as 32 bits, read unsigned
            return f"CAST(CAST('x' || SUBSTRING(MD5({text}), 1, 8) AS BIT(32)) AS BIGINT)"
        return f"STRTOL(SUBSTRING(MD5({text}), 1, 8), 16)"

    def bounds(self) -> tuple[int, int] | None:
        f, p = self._filter()
        lo, hi = self._query(f"SELECT MIN({self.first}), MAX({self.first}) FROM {self.relation} WHERE 1 = 1{f}", p)[0]
        return None if lo is None else (int(lo), int(hi))

    def chunk_sums(self, lo: int, hi: int, step: int) -> dict[int, tuple[int, int]]:
        f, p = self._filter()
        ph = self.ph
        bucket = f"FLOOR(({self.first} - {ph}) / {ph})" if self.dialect != "redshift" else \
            f"FLOOR(CAST({self.first} - {ph} AS DOUBLE PRECISION) / {ph})"
        integer = "SIGNED" if self.dialect == "mysql" else "BIGINT"
        sql = (f"SELECT CAST({bucket} AS {integer}) AS b, COUNT(*), SUM({self._hash()}) FROM {self.relation} "
               f"WHERE {self.first} >= {ph} AND {self.first} < {ph}{f} GROUP BY 1")
        rows = self._query(sql, [lo, step, lo, hi, *p])
        return {int(b): (int(n), int(h)) for b, n, h in rows}

    def rows(self, lo: int, hi: int) -> dict[tuple, int]:
        f, p = self._filter()
        sql = (f"SELECT {', '.join(self.keys)}, {self.cursor} FROM {self.relation} "
               f"WHERE {self.first} >= {self.ph} AND {self.first} < {self.ph}{f}")
        return {tuple(int(v) for v in r[:-1]): int(r[-1]) for r in self._query(sql, [lo, hi, *p])}

    def lookup(self, keys: Iterable[tuple]) -> dict[tuple, int]:
        keys = list(keys)
        out: dict[tuple, int] = {}
        wanted = set(keys)
        firsts = sorted({k[0] for k in keys})
        for i in range(0, len(firsts), 1000):
            part = firsts[i:i + 1000]
            sql = (f"SELECT {', '.join(self.keys)}, {self.cursor} FROM {self.relation} "
                   f"WHERE {self.first} IN ({', '.join([self.ph] * len(part))})")
            for r in self._query(sql, part):
                k = tuple(int(v) for v in r[:-1])
                if k in wanted:
                    out[k] = int(r[-1])
        return out
