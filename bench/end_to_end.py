"""The whole path on a generated history: MariaDB -> Kafka -> raw -> marts, and each hop alone.

    .venv/bin/python bench/end_to_end.py --rows 1000000        # make bench-e2e

One run, on the local stack (`ordertrack stack up`), one table (scan events: 50 rows share each
second of cursor, the shape of `bench/producer_throughput.py`), after one untimed read of the
history (MariaDB's buffer pool is warm for every figure); each figure is measured in a process of
its own so its peak memory (max RSS) is its own, except (e), which shares (f)'s process, and
(b), whose process also holds the serialized rows it produces:

(a) fetch-only: the producer's driver (MYSQL_DRIVER: mysqlclient where installed and no TLS is asked
    for, else pymysql), its keyset query and pages, rows read and dropped;
(b) produce-only: the same rows already serialized, the producer's settings, one transaction;
(c) the producer: a backfill of the whole period (fetch + validate + serialize + produce +
    watermark, one transaction per sub-window);
(d) landing alone: everything (c) published, drained into a fresh DuckDB warehouse with the marts
    merge (consume + stage + type + land + merge);
(e) DuckDB loading one batch of those rows from Parquet (the engine's own limit), and
(f) `DuckDBEngine.land` of the same batch as JSON messages, its statements rendered beforehand as a
    running worker has them (and, beside it, the vectorized JSON read of that batch alone: the part
    of (f) no warehouse can skip while messages are JSON text);
(g) end to end: fresh topics, a fresh warehouse; the backfill in one process and the landing in
    another, overlapping (`ordertrack.once.land_while`, as `run-once` does), until every row is in
    its mart.

Prints rows/s and peak memory of each, and the issue's four figures: c / min(a, b), f / e,
g in rows/s, and g / the slowest stage alone (the least of (a), (b), (d); with pymysql that is
(a), with mysqlclient (d)), beside g / a.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from producer_throughput import BASE, bench_config, fetch_only, prepare_source, produce_only  # noqa: E402

LAND_BATCH = 500_000


def _measured(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    result = fn(*args)
    return result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB


def in_child(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """`fn(*args)` in a fresh process: (its result, the process's peak RSS in MiB)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measured, fn, *args).result()


def stage_fetch(tag: str, page: int, end: int) -> tuple[int, float]:
    from ordertrack.settings import load_settings

    n, seconds, _ = fetch_only(bench_config(tag, page), load_settings(), end, payloads=False)
    return n, seconds


def stage_produce(tag: str, page: int, end: int) -> tuple[int, float]:
    from ordertrack.settings import load_settings

    cfg, settings = bench_config(tag, page), load_settings()
    n, _, payloads = fetch_only(cfg, settings, end)
    return n, produce_only(cfg, settings, payloads)


def stage_producer(tag: str, page: int, end: int) -> tuple[int, float]:
    from ordertrack.settings import load_settings
    from ordertrack.tables import TableRegistry
    from producers.backfill import publish_period

    cfg = bench_config(tag, page)
    spec = TableRegistry(cfg).get("uni_tracking_spath")
    t0 = time.perf_counter()
    result = publish_period(cfg, load_settings(), spec, BASE, end)
    assert result.status == "published", result.error
    return result.rows, time.perf_counter() - t0


def stage_landing(tag: str, page: int, warehouse: str) -> tuple[int, float, int]:
    from consumers.drain import drain
    from marts.runner import MartRunner
    from ordertrack.settings import load_settings
    from ordertrack.tables import TableRegistry
    from ordertrack.warehouse.duckdb_engine import DuckDBEngine

    cfg = bench_config(tag, page)
    registry = TableRegistry(cfg)
    spec = registry.get("uni_tracking_spath")
    engine = DuckDBEngine(warehouse)
    t0 = time.perf_counter()
    landed = drain(cfg, load_settings(), engine, [spec], after_landing=MartRunner(registry, engine.dialect).after_landing)
    seconds = time.perf_counter() - t0
    mart = engine.query(f'SELECT COUNT(*) FROM "{spec.mart_schema}"."{spec.mart_table}"')[0][0]
    return landed[0].landed, seconds, mart


def stage_engine(tag: str, page: int, rows: int, folder: str) -> tuple[int, float, float, float]:
    """(e) and (f): one batch of the topic's messages, landed by the engine and loaded from Parquet."""
    import duckdb
    from confluent_kafka import Consumer, TopicPartition

    from consumers.drain import consumer_config
    from consumers.staging import Gathered
    from ordertrack.settings import load_settings
    from ordertrack.source.columns import source_columns
    from ordertrack.tables import TableRegistry
    from ordertrack.warehouse.duckdb_engine import DuckDBEngine
    from ordertrack.warehouse.landing import plan
    from ordertrack.warehouse.typed import parse
    from ordertrack.warehouse.types import Column, warehouse_type

    cfg, settings = bench_config(tag, page), load_settings()
    spec = TableRegistry(cfg).get("uni_tracking_spath")
    c = Consumer({**consumer_config(cfg, settings), "group.id": f"bench-engine-{tag}"})
    parts = sorted(c.list_topics(spec.topic, timeout=15).topics[spec.topic].partitions)
    c.assign([TopicPartition(spec.topic, p, 0) for p in parts])
    gathered = Gathered()  # as the drain reads them
    while len(gathered) < rows:
        for m in c.consume(min(10_000, rows - len(gathered)), timeout=5):
            if m.error() is None:
                gathered.add(m, m.partition(), m.offset())
    c.close()
    staged = gathered.staged()
    del gathered
    engine = DuckDBEngine(Path(folder) / "engine.duckdb")
    engine.ensure_raw_table(spec, [Column(col.name, warehouse_type(col)) for col in source_columns(settings.mysql, spec)])
    columns = {k: v for k, v in engine.raw_columns(spec).items() if not k.startswith("_")}
    # The landing's statements, rendered once per table layout in a running worker (sqlglot: 70 ms),
    # are rendered before the timing, as the worker's first batch would have done.
    plan(spec, list(columns), engine.raw_schema, engine.mart_schema, engine.dialect)
    t0 = time.perf_counter()
    assert parse(staged, columns).columns is not None  # the JSON text parsed alone: the landing's floor
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = engine.land(spec, spec.topic, staged)
    land_s = time.perf_counter() - t0
    assert result.landed == staged.num_rows, result
    parquet = Path(folder) / "rows.parquet"
    with engine.connection() as con:
        con.execute(f"""COPY (SELECT * FROM "{spec.raw_schema}"."{spec.raw_table}") TO '{parquet}' (FORMAT parquet)""")
    t0 = time.perf_counter()  # open, load, close (DuckDB checkpoints on close), as a landing does
    con = duckdb.connect(str(Path(folder) / "parquet.duckdb"))
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{parquet}')")
    con.close()
    parquet_s = time.perf_counter() - t0
    return staged.num_rows, land_s, parquet_s, parse_s


def stage_end_to_end(tag: str, page: int, end: int, warehouse: str) -> tuple[int, int, float, int, int]:
    from marts.runner import MartRunner
    from ordertrack.once import land_while
    from ordertrack.settings import load_settings
    from ordertrack.tables import TableRegistry
    from ordertrack.warehouse.duckdb_engine import DuckDBEngine
    from producers.backfill import publish_period

    cfg, settings = bench_config(tag, page), load_settings()
    registry = TableRegistry(cfg)
    spec = registry.get("uni_tracking_spath")
    engine = DuckDBEngine(warehouse)
    t0 = time.perf_counter()
    once = land_while(publish_period, (cfg, settings, spec, BASE, end), cfg, settings, [spec], engine,
                      MartRunner(registry, engine.dialect).after_landing)
    seconds = time.perf_counter() - t0
    mart = engine.query(f'SELECT COUNT(*) FROM "{spec.mart_schema}"."{spec.mart_table}"')[0][0]
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return once.produced.rows, once.landed[spec.name].landed, seconds, mart, int(child_peak)


def main() -> None:
    from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
    from ordertrack.settings import load_settings
    from ordertrack.source.connection import reader_driver

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--page", type=int, default=10_000)
    args = ap.parse_args()
    n, page = args.rows, args.page
    driver = reader_driver(load_settings().mysql)
    prepare_source(n)
    end = BASE + n // 50 + 1
    admin = KafkaAdmin(load_settings().kafka)
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    run = uuid.uuid4().hex[:6]
    created: list[str] = []

    def topics(tag: str) -> str:
        cfg = bench_config(tag, page)
        admin.ensure_topics(pipeline_topics(cfg))
        created.extend(t.name for t in pipeline_topics(cfg))
        return tag

    try:
        in_child(stage_fetch, run, page, end)  # untimed: MariaDB's buffer pool warm for every figure alike
        (fetched, fetch_s), fetch_mb = in_child(stage_fetch, run, page, end)
        t = topics(run + "b")
        (produced_only, produce_s), produce_mb = in_child(stage_produce, t, page, end)
        t = topics(run + "c")
        (published, producer_s), producer_mb = in_child(stage_producer, t, page, end)
        (landed, landing_s, mart_d), landing_mb = in_child(stage_landing, t, page, str(tmp / "landing.duckdb"))
        (batch, land_s, parquet_s, parse_s), engine_mb = in_child(stage_engine, t, page, min(n, LAND_BATCH), str(tmp))
        t = topics(run + "g")
        (e2e_published, e2e_landed, e2e_s, mart_g, child_mb), e2e_mb = in_child(
            stage_end_to_end, t, page, end, str(tmp / "e2e.duckdb"))
    finally:
        admin.delete_topics(created)
    assert fetched == produced_only == published == landed == e2e_published == e2e_landed == n, \
        (fetched, produced_only, published, landed, e2e_published, e2e_landed, n)
    assert mart_d == mart_g == n, (mart_d, mart_g)

    a, b, c = n / fetch_s, n / produce_s, n / producer_s
    d, e, f, g = n / landing_s, batch / parquet_s, batch / land_s, n / e2e_s
    print(f"history: {n:,} scan events, page {page:,}; source reads by {driver}; every figure in a process of its own")
    print(f"{'':4}{'stage':58}{'rows/s':>12}{'seconds':>9}{'peak RSS':>10}")
    rows = [
        ("(a)", f"fetch-only ({driver}, keyset pages)", a, fetch_s, fetch_mb),
        ("(b)", "produce-only (serialized rows, one transaction)", b, produce_s, produce_mb),
        ("(c)", "producer (backfill of the period)", c, producer_s, producer_mb),
        ("(d)", "landing alone (drain + merge, fresh warehouse)", d, landing_s, landing_mb),
        ("(e)", f"DuckDB Parquet load, one batch of {batch:,}", e, parquet_s, None),
        ("(f)", "DuckDBEngine.land, the same batch as JSON", f, land_s, engine_mb),
        ("   ", "  of which reading the JSON text (pyarrow, checks)", batch / parse_s, parse_s, None),
        ("(g)", "end to end: backfill || landing, source -> marts", g, e2e_s, e2e_mb),
    ]
    for label, name, rate, secs, mb in rows:
        print(f"{label:4}{name:58}{rate:>12,.0f}{secs:>9.2f}{(f'{mb:,.0f} MiB' if mb else '(in f)'):>10}")
    print(f"    (g)'s producer process: peak RSS {child_mb:,} MiB")
    print(f"producer / min(fetch-only, produce-only)  c / min(a, b) = {c / min(a, b):.2f}   (goal >= 0.8)")
    print(f"landing engine / DuckDB Parquet load       f / e         = {f / e:.2f}   (goal >= 0.5)")
    print(f"end to end                                  g             = {g:,.0f} rows/s   (goal >= 50,000)")
    slowest_rate, slowest = min((a, "a"), (b, "b"), (d, "d"))
    print(f"end to end / the slowest stage alone        g / {slowest}         = {g / slowest_rate:.2f}   (goal >= 0.7; "
          f"the slowest of (a), (b) and (d) here is ({slowest}))")
    print(f"end to end / fetch-only                     g / a         = {g / a:.2f}   (fetch-only was the slowest "
          "stage when issue 17 was filed, with pymysql)")


if __name__ == "__main__":
    main()
