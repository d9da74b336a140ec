"""Incremental mart merge vs rebuilding the mart from scratch, on DuckDB, same run.

    .venv/bin/python bench/mart_merge.py --mart-rows 1000000 10000000 --batch 200000

For each mart size N: a scan-event mart of N keys is built (with its raw history), then a batch
of `--batch` versions (half updates of existing keys, half new keys) is landed and merged by the
real runner inside the landing transaction (`merge`). In the same run the mart is rebuilt from
all raw versions (latest per key, `ROW_NUMBER`), which is what a full refresh costs (`rebuild`).
Prints both, their ratio, and how the merge time grows with N.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent.parent))

from consumers.staging import RawMessage, stage  # noqa: E402
from marts.runner import MartRunner  # noqa: E402
from ordertrack.config import load_pipeline_config  # noqa: E402
from ordertrack.tables import TableRegistry  # noqa: E402
from ordertrack.warehouse.duckdb_engine import DuckDBEngine  # noqa: E402
from ordertrack.warehouse.types import Column  # noqa: E402

BASE = 1_790_000_000
COLUMNS = [Column("id", "BIGINT"), Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT"),
           Column("pathTime", "BIGINT"), Column("event_code", "VARCHAR"), Column("location", "VARCHAR")]


def run(n: int, batch: int) -> tuple[float, float]:
    registry = TableRegistry(load_pipeline_config())
    spec = registry.get("uni_tracking_spath")
    engine = DuckDBEngine(Path(tempfile.mkdtemp(prefix="bench-mart-")) / "w.duckdb")
    engine.ensure_raw_table(spec, COLUMNS)
    raw = f'"{spec.raw_schema}"."{spec.raw_table}"'
    mart = f'"{spec.mart_schema}"."{spec.mart_table}"'
    with engine.connection() as con:
        # N keys, one version each, all within 180 days (no archival in this measurement).
        con.execute(f"""INSERT INTO {raw} SELECT i, i // 6, i % 6 + 1, {BASE} + (i % 1000000), 'ARRIVED_HUB', 'Shanghai',
                        'kuaisong.uni_tracking_spath', (i % 3)::INT, i // 3, 'w', now()::TIMESTAMP, 'seed'
                        FROM range({n}) t(i)""")
        con.execute(f"CREATE TABLE {mart} AS SELECT * FROM {raw}")
        con.execute(f"""INSERT INTO settlement_public.ordertrack_ingest_ledger
                        SELECT 'kuaisong.uni_tracking_spath', p, 0, MAX(_kafka_offset), COUNT(*), COUNT(*), 0, now(), 'seed', now()
                        FROM (SELECT _kafka_partition p, _kafka_offset FROM {raw}) GROUP BY p""")
    # The batch: half newer versions of existing keys, half new keys; offsets after the seed.
    msgs = []
    for j in range(batch):
        i = j * (n // batch) if j % 2 == 0 else n + j
        msgs.append(RawMessage(i % 3, n + j, orjson.dumps({
            "id": n + j, "order_id": i // 6, "traceSeq": i % 6 + 1, "pathTime": BASE + 2_000_000 + j,
            "event_code": "DELIVERED", "location": "Beijing"}), "bench"))
    staged = stage(msgs)
    runner = MartRunner(registry, "duckdb")
    merge_only: list[float] = []

    def merge(ex, s, b) -> None:  # noqa: ANN001
        t = time.perf_counter()
        runner.merge_batch(ex, s, b)
        merge_only.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    result = engine.land(spec, spec.topic, staged, after=merge)
    land_and_merge_s = time.perf_counter() - t0
    merge_s = merge_only[0]
    assert result.merge_error is None and result.landed == batch, result
    with engine.connection() as con:
        t0 = time.perf_counter()
        con.execute(f"""CREATE TABLE rebuilt AS SELECT * FROM {raw}
                        QUALIFY ROW_NUMBER() OVER (PARTITION BY order_id, "traceSeq" ORDER BY "pathTime" DESC, _kafka_offset DESC) = 1""")
        rebuild_s = time.perf_counter() - t0
        cols = 'order_id, "traceSeq", "pathTime"'
        same = con.execute(f"SELECT COUNT(*) FROM (SELECT {cols} FROM {mart} EXCEPT SELECT {cols} FROM rebuilt)").fetchone()[0]
        sizes = con.execute(f"SELECT (SELECT COUNT(*) FROM {mart}), (SELECT COUNT(*) FROM rebuilt)").fetchone()
    assert same == 0 and sizes[0] == sizes[1], (same, sizes)
    print(f"  (land + merge in one transaction: {land_and_merge_s:.2f}s)")
    return merge_s, rebuild_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mart-rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--batch", type=int, default=200_000)
    args = ap.parse_args()
    results = {}
    for n in args.mart_rows:
        merge_s, rebuild_s = run(n, args.batch)
        results[n] = merge_s
        print(f"mart {n:>11,} rows: merge of {args.batch:,} versions {merge_s:6.2f}s; "
              f"rebuild from raw {rebuild_s:6.2f}s; rebuild / merge = {rebuild_s / merge_s:.1f}x")
    if len(results) > 1:
        small, large = min(results), max(results)
        print(f"merge time grows {results[large] / results[small]:.2f}x from {small:,} to {large:,} rows "
              f"({large / small:.0f}x the rows)")


if __name__ == "__main__":
    main()
