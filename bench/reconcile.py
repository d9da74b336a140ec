"""`dq reconcile` (chunked key-range hashes) vs fetching both sides whole and diffing, same run.

    .venv/bin/python bench/reconcile.py --rows 1000000 5000000 --differences 10

For each size N: a MariaDB table of N tracking rows (the local stack) and a DuckDB mart holding
the same rows with `--differences` planted (missing, extra, stale, in equal parts). Measures
(a) the chunked-hash reconcile the CLI runs, (b) the baseline: every (key, cursor) fetched from
both sides and compared in Python. Prints both times, their ratio, the rows each moved, and
checks that both found the same keys.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from ordertrack.config import load_pipeline_config  # noqa: E402
from ordertrack.stack import Stack  # noqa: E402
from ordertrack.tables import TableRegistry  # noqa: E402
from ordertrack.warehouse.duckdb_engine import DuckDBEngine  # noqa: E402
from quality.reconcile import SqlSide, reconcile  # noqa: E402

T = 1_700_000_000


def run(n: int, differences: int) -> None:
    spec = TableRegistry(load_pipeline_config()).get("uni_tracking_info")
    db = f"bench_{uuid.uuid4().hex[:8]}"
    admin = Stack().mariadb.admin_connect(database="kuaisong")
    k = max(1, differences // 3)
    step = n // (3 * k + 1)
    missing = [step * (i + 1) for i in range(k)]
    stale = [step * (k + i + 1) for i in range(k)]
    extra = [n + 1 + i for i in range(differences - 2 * k)]
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{db}`")
            cur.execute(f"CREATE TABLE `{db}`.uni_tracking_info (order_id BIGINT UNSIGNED PRIMARY KEY, "
                        "update_time INT UNSIGNED NOT NULL)")
            cur.execute(f"INSERT INTO `{db}`.uni_tracking_info SELECT seq, {T} + seq % 86400 FROM seq_1_to_{n}")
        engine = DuckDBEngine(Path(tempfile.mkdtemp(prefix="bench-reconcile-")) / "w.duckdb")
        with engine.connection() as con:
            con.execute("CREATE TABLE settlement_ods.m AS SELECT range AS order_id, "
                        f"{T} + range % 86400 AS update_time FROM range(1, {n + 1})")
            con.execute(f"DELETE FROM settlement_ods.m WHERE order_id IN ({', '.join(map(str, missing))})")
            con.execute(f"UPDATE settlement_ods.m SET update_time = update_time - 60 WHERE order_id IN ({', '.join(map(str, stale))})")
            con.execute(f"INSERT INTO settlement_ods.m SELECT unnest({extra}), {T}")

        def mysql(sql: str, params: list) -> list[tuple]:
            with admin.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())

        source = SqlSide("source", mysql, spec, f"`{db}`.`uni_tracking_info`", "mysql", None)
        target = SqlSide("mart", engine.query, spec, '"settlement_ods"."m"', "duckdb", None)

        t0 = time.perf_counter()
        source.chunk_sums(1, n + 1, n)  # one range: the source's hash pass alone, what bounds (a) here
        source_hash = time.perf_counter() - t0

        t0 = time.perf_counter()
        result = reconcile(spec.name, spec.key_columns, source, target)
        chunked = time.perf_counter() - t0

        t0 = time.perf_counter()
        a = dict(mysql(f"SELECT order_id, update_time FROM `{db}`.uni_tracking_info", []))
        b = dict(engine.query("SELECT order_id, update_time FROM settlement_ods.m"))
        full_missing = sorted(x for x in a if x not in b)
        full_extra = sorted(x for x in b if x not in a)
        full_stale = sorted(x for x in a if x in b and a[x] != b[x])
        full = time.perf_counter() - t0

        found = ([r["order_id"] for r in result.missing], [r["order_id"] for r in result.extra],
                 [r["order_id"] for r in result.stale])
        assert found == (full_missing, full_extra, full_stale) == (missing, extra, stale), "the two methods disagree"
        print(f"N={n:>10,}  differences={differences}  chunked {chunked:6.2f}s ({result.rows_fetched:,} rows fetched, "
              f"{result.ranges_compared} range queries per side)  full fetch {full:6.2f}s ({len(a) + len(b):,} rows)  "
              f"ratio chunked/full {chunked / full:.2f}  (the source's hash pass alone {source_hash:.2f}s)")
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        admin.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--differences", type=int, default=10)
    args = p.parse_args()
    for n in args.rows:
        run(n, args.differences)


if __name__ == "__main__":
    main()
