"""Landing rows/s into DuckDB, next to DuckDB loading the same rows from Parquet, same run.

    .venv/bin/python bench/landing_throughput.py --rows 500000

(a) DuckDB's own limit: the landed rows, exported to a Parquet file, loaded into a fresh table;
(b) `DuckDBEngine.land`: one staged batch (JSON values, as they come from Kafka) -> raw table +
    ledger, one transaction;
(c) end to end: publish one window of the same number of rows from MariaDB to Kafka, then drain
    it into a fresh warehouse (what `run-once` does), rows / wall time.
Needs the local stack; (c) reuses the producer benchmark's source data (bench_producer).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import orjson

sys.path.insert(0, str(Path(__file__).parent))

from producer_throughput import BASE, bench_config, prepare_source  # noqa: E402

from consumers.drain import drain  # noqa: E402
from consumers.staging import RawMessage, stage  # noqa: E402
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics  # noqa: E402
from ordertrack.settings import load_settings  # noqa: E402
from ordertrack.tables import TableRegistry  # noqa: E402
from ordertrack.warehouse.duckdb_engine import DuckDBEngine  # noqa: E402
from ordertrack.warehouse.types import Column  # noqa: E402
from producers.backfill import publish_period  # noqa: E402

COLUMNS = [Column("id", "BIGINT"), Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT"),
           Column("pathTime", "BIGINT"), Column("event_code", "VARCHAR(128)"), Column("event_desc", "VARCHAR(1020)"),
           Column("location", "VARCHAR(512)"), Column("facility", "VARCHAR(256)"), Column("operator", "VARCHAR(256)"),
           Column("add_time", "BIGINT")]


def messages(n: int) -> list[RawMessage]:
    out = []
    for i in range(n):
        t = BASE + i // 50
        out.append(RawMessage(i % 3, i // 3, orjson.dumps({
            "id": i + 1, "order_id": 10_000_000 + i // 6, "traceSeq": i % 6 + 1, "pathTime": t,
            "event_code": "DEPARTED_HUB", "event_desc": "departed hub", "location": "Shanghai",
            "facility": "Shanghai hub", "operator": f"op{i % 97:02d}", "add_time": t,
        }), "bench:window"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000)
    args = ap.parse_args()
    n = args.rows
    tmp = Path(tempfile.mkdtemp(prefix="bench-landing-"))
    cfg = bench_config(uuid.uuid4().hex[:6], 10_000)
    spec = TableRegistry(cfg).get("uni_tracking_spath")

    msgs = messages(n)
    staged = stage(msgs)
    engine = DuckDBEngine(tmp / "land.duckdb")
    engine.ensure_raw_table(spec, COLUMNS)
    t0 = time.perf_counter()
    result = engine.land(spec, spec.topic, staged)
    land_s = time.perf_counter() - t0
    assert result.landed == n, result

    raw = f'"{spec.raw_schema}"."{spec.raw_table}"'
    parquet = tmp / "rows.parquet"
    with engine.connection() as con:
        con.execute(f"COPY (SELECT * FROM {raw}) TO '{parquet}' (FORMAT parquet)")
    t0 = time.perf_counter()  # open, load, close (DuckDB checkpoints on close), as a landing does
    con = duckdb.connect(str(tmp / "parquet.duckdb"))
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{parquet}')")
    con.close()
    parquet_s = time.perf_counter() - t0

    # (c) end to end on the same number of rows, from the producer benchmark's source.
    settings = load_settings()
    prepare_source(max(n, 1_000_000))
    admin = KafkaAdmin(settings.kafka)
    admin.ensure_topics(pipeline_topics(cfg))
    e2e_engine = DuckDBEngine(tmp / "e2e.duckdb")
    try:
        t0 = time.perf_counter()
        window = publish_period(cfg, settings, spec, BASE, BASE + n // 50)
        landed = drain(cfg, settings, e2e_engine, [spec])[0]
        e2e_s = time.perf_counter() - t0
    finally:
        admin.delete_topics([t.name for t in pipeline_topics(cfg)])
    assert window.rows == landed.landed == n, (window.rows, landed.landed)

    a, b, c = n / parquet_s, n / land_s, n / e2e_s
    print(f"batch: {n:,} rows, 10 columns")
    print(f"(a) DuckDB loading them from Parquet   {a:>12,.0f} rows/s  ({parquet_s:.2f}s)")
    print(f"(b) land(): JSON batch -> raw + ledger {b:>12,.0f} rows/s  ({land_s:.2f}s)")
    print(f"ratio b / a = {b / a:.2f}")
    print(f"(c) end to end (produce window + drain) {c:>11,.0f} rows/s  ({e2e_s:.2f}s)")


if __name__ == "__main__":
    main()
