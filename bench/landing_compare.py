"""(a) and (b) of `landing_throughput.py` for any checkout of this repository: DuckDB loading the
landed rows from Parquet, against `DuckDBEngine.land` of the same JSON batch. Needs no service, so
two trees (before and after a change) can be measured one right after the other.

    .venv/bin/python bench/landing_compare.py /path/to/checkout 300000 [poison]

`poison` messages (invalid JSON, spread evenly) are put in the batch in place of as many rows: a
backfill batch with a poison message in it lands the rest as it would without.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
import uuid
from pathlib import Path


def main(tree: str, n: int, poison: int = 0) -> None:
    sys.path.insert(0, tree)
    sys.path.insert(0, f"{tree}/bench")
    import duckdb
    from landing_throughput import COLUMNS, messages
    from producer_throughput import bench_config

    import ordertrack
    from consumers.staging import stage
    from ordertrack.tables import TableRegistry
    from ordertrack.warehouse.duckdb_engine import DuckDBEngine

    assert ordertrack.__file__.startswith(str(Path(tree).absolute())), f"measuring {ordertrack.__file__}, not {tree}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-landing-compare-"))
    spec = TableRegistry(bench_config(uuid.uuid4().hex[:6], 10_000)).get("uni_tracking_spath")
    batch = messages(n)
    for i in range(poison):
        at = (2 * i + 1) * n // (2 * poison)
        batch[at] = dataclasses.replace(batch[at], value=b'{"id": ' + str(at).encode() + b', "order_id": ')
    staged = stage(batch)
    engine = DuckDBEngine(tmp / "land.duckdb")
    engine.ensure_raw_table(spec, COLUMNS)
    t0 = time.perf_counter()
    assert engine.land(spec, spec.topic, staged).landed == n - poison
    land_s = time.perf_counter() - t0
    parquet = tmp / "rows.parquet"
    with engine.connection() as con:
        con.execute(f'COPY (SELECT * FROM "{spec.raw_schema}"."{spec.raw_table}") TO \'{parquet}\' (FORMAT parquet)')
    t0 = time.perf_counter()  # open, load, close (DuckDB checkpoints on close), as a landing does
    con = duckdb.connect(str(tmp / "parquet.duckdb"))
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{parquet}')")
    con.close()
    parquet_s = time.perf_counter() - t0
    print(f"{tree}: {poison} poison in {n:,}: (a) {n / parquet_s:,.0f} rows/s  (b) {n / land_s:,.0f} rows/s  "
          f"b/a = {parquet_s / land_s:.2f}")


if __name__ == "__main__":
    main(str(Path(sys.argv[1]).absolute()), int(sys.argv[2]) if len(sys.argv) > 2 else 300_000,
         int(sys.argv[3]) if len(sys.argv) > 3 else 0)
