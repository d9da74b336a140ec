"""Producer rows/s on one large window, next to its two stages measured alone in the same run.

    .venv/bin/python bench/producer_throughput.py --rows 1000000

(a) fetch-only: the same driver, keyset query and page size, rows read and dropped;
(b) produce-only: the same serialized payloads, same producer settings, one transaction;
(c) the producer: fetch + validate + serialize + produce + watermark, one transaction.
Prints rows/s of each and the ratio c / min(a, b). Needs the local stack (`ordertrack stack up`).
"""

from __future__ import annotations

import argparse
import time
import uuid

import yaml
from confluent_kafka import Producer as KafkaProducer

from ordertrack.config import PipelineConfig
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.resources import resource_path, resource_text
from ordertrack.settings import load_settings
from ordertrack.source.connection import connect_reader
from ordertrack.stack import Stack
from ordertrack.stack.mariadb import PIPELINE_USER, split_sql
from ordertrack.tables import TableRegistry
from producers.backfill import publish_period
from producers.poller import producer_config
from producers.reader import WindowReader
from producers.rows import Encoded, encode_row

DB = "bench_producer"
BASE = 1_700_000_000


def prepare_source(rows: int) -> None:
    """A copy of the source schema with `rows` scan events (reused when already there)."""
    with Stack().mariadb.admin_connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB}`")
        cur.execute(f"USE `{DB}`")
        for stmt in split_sql(resource_text("source_schema.sql")):
            cur.execute(stmt)
        cur.execute(f"GRANT SELECT ON `{DB}`.* TO '{PIPELINE_USER}'@'%'")
        cur.execute("SELECT COUNT(*) FROM uni_tracking_spath")
        have = cur.fetchone()[0]
        if have == rows:
            return
        cur.execute("TRUNCATE uni_tracking_spath")
        print(f"inserting {rows:,} rows ...", flush=True)
        sql = ("INSERT INTO uni_tracking_spath (order_id, traceSeq, pathTime, event_code, event_desc, location, "
               "facility, operator, add_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
        batch = []
        for i in range(rows):
            t = BASE + i // 50  # 50 rows a second: many rows share one cursor value
            batch.append((10_000_000 + i // 6, i % 6 + 1, t, "DEPARTED_HUB", "departed hub", "Shanghai",
                          "Shanghai hub", f"op{i % 97:02d}", t))
            if len(batch) == 10_000:
                cur.executemany(sql, batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)


def bench_config(tag: str, page: int) -> PipelineConfig:
    raw = yaml.safe_load(resource_path("pipeline.yaml").read_text())
    raw["pipeline"]["name"] = f"bench_{tag}"
    raw["source"]["database"] = DB
    raw["kafka"].update(topic_prefix=f"bench{tag}", watermark_topic=f"bench{tag}.wm", dead_letter_topic=f"bench{tag}.dlq")
    for t in raw["tables"]:
        t["full_name"] = f"{DB}.{t['full_name'].split('.')[1]}"
        t["batch_size"] = page
    return PipelineConfig.model_validate(raw)


def fetch_only(cfg: PipelineConfig, settings, end: int, payloads: bool = True) -> tuple[int, float, list[Encoded]]:
    spec = TableRegistry(cfg).get("uni_tracking_spath")
    conn = connect_reader(settings.mysql)  # the producer's own driver (MYSQL_DRIVER)
    try:
        reader = WindowReader(conn, spec, spec.batch_size)
        t0 = time.perf_counter()
        reader.begin_snapshot()
        n = sum(len(page) for page in reader.pages(BASE, end))
        reader.end_snapshot()
        fetch_s = time.perf_counter() - t0
        if not payloads:
            return n, fetch_s, []
        # Payloads for (b), prepared outside any timing.
        reader.begin_snapshot()
        # Copied: a bytes object orjson returns keeps about 4 KB of memory (measured here, orjson
        # 3.13), which a million held payloads turn into gigabytes the baseline would carry.
        encoded = [Encoded(bytes(bytearray(e.key)), bytes(bytearray(e.value)), e.cursor)
                   for page in reader.pages(BASE, end) for e in (encode_row(spec, r) for r in page)
                   if isinstance(e, Encoded)]
        reader.end_snapshot()
    finally:
        conn.close()
    return n, fetch_s, encoded


def produce_only(cfg: PipelineConfig, settings, payloads: list[Encoded]) -> float:
    spec = TableRegistry(cfg).get("uni_tracking_spath")
    conf = producer_config(cfg, settings, "bench-produce-only")
    conf["transactional.id"] += f".{uuid.uuid4().hex[:6]}"
    p = KafkaProducer(conf)
    p.init_transactions(30)
    t0 = time.perf_counter()
    p.begin_transaction()
    for e in payloads:
        while True:
            try:
                p.produce(spec.topic, key=e.key, value=e.value,
                          headers=[("window_id", b"bench"), ("cursor", str(e.cursor).encode())])
                break
            except BufferError:
                p.poll(0.05)
    p.flush(300)
    p.commit_transaction(120)
    return time.perf_counter() - t0


def full_producer(cfg: PipelineConfig, settings, end: int) -> tuple[int, float]:
    spec = TableRegistry(cfg).get("uni_tracking_spath")
    t0 = time.perf_counter()
    result = publish_period(cfg, settings, spec, BASE, end)
    elapsed = time.perf_counter() - t0
    assert result.status == "published", result.error
    return result.rows, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--page", type=int, default=10_000)
    args = ap.parse_args()
    settings = load_settings()
    prepare_source(args.rows)
    end = BASE + args.rows // 50 + 1
    tag = uuid.uuid4().hex[:6]
    cfg = bench_config(tag, args.page)
    admin = KafkaAdmin(settings.kafka)
    admin.ensure_topics(pipeline_topics(cfg))
    try:
        n, fetch_s, payloads = fetch_only(cfg, settings, end)
        produce_s = produce_only(cfg, settings, payloads)
        del payloads
        # A fresh topic for the real run, so (b)'s records do not sit in its partitions.
        admin.delete_topics([t.name for t in pipeline_topics(cfg)])
        cfg = bench_config(tag + "p", args.page)
        admin.ensure_topics(pipeline_topics(cfg))
        rows, full_s = full_producer(cfg, settings, end)
    finally:
        admin.delete_topics([t.name for t in pipeline_topics(cfg)])
    assert rows == n, (rows, n)
    a, b, c = n / fetch_s, n / produce_s, n / full_s
    bound = "fetch (MariaDB + pymysql)" if a < b else "produce (librdkafka)"
    print(f"window: {n:,} rows, page {args.page:,}")
    print(f"(a) fetch-only     {a:>10,.0f} rows/s  ({fetch_s:.2f}s)")
    print(f"(b) produce-only   {b:>10,.0f} rows/s  ({produce_s:.2f}s)")
    print(f"(c) producer       {c:>10,.0f} rows/s  ({full_s:.2f}s)")
    print(f"ratio c / min(a, b) = {c / min(a, b):.2f}   (slower stage alone: {bound})")


if __name__ == "__main__":
    main()
