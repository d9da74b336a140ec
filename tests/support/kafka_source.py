"""Reading topics to their end and writing source rows, for integration tests."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition


def consume_all(bootstrap: str, topic: str, isolation: str = "read_committed", timeout: float = 30) -> list:
    """Every readable message of `topic`, reading each partition to its end."""
    c = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex[:6]}",
        "isolation.level": isolation, "enable.auto.commit": False, "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = sorted(md.partitions)
        ends = _readable_ends(c, bootstrap, topic, parts, isolation)
        todo = {p for p in parts if ends[p] > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        out = []
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        todo.discard(m.partition())
                    continue
                out.append(m)
        return out
    finally:
        c.close()


def _readable_ends(c: Consumer, bootstrap: str, topic: str, parts: list[int], isolation: str) -> dict[int, int]:
    """End offsets to read to. Kafka writes a transaction's commit markers to the partitions just
    after `commit_transaction` returns, so for a moment the last stable offset lags the high
    watermark; wait (briefly) for it, and settle for the stable offset when a transaction stays
    open (a killed producer's)."""
    lso = lambda: {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in parts}  # noqa: E731
    if isolation != "read_committed":
        return lso()
    hwm = high_watermarks(bootstrap, topic)
    deadline = time.monotonic() + 3
    ends = lso()
    while any(ends[p] < hwm.get(p, 0) for p in parts) and time.monotonic() < deadline:
        time.sleep(0.1)
        ends = lso()
    return ends


def high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> high watermark (everything written, committed or not)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hwm-{uuid.uuid4().hex[:6]}", "isolation.level": "read_uncommitted"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in parts}
    finally:
        c.close()


def wait_for_writes(bootstrap: str, topic: str, proc, timeout: float = 60) -> bool:
    """True once anything was written to `topic` (even uncommitted) while `proc` still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(high_watermarks(bootstrap, topic).values()) > 0:
            return proc.poll() is None
        time.sleep(0.05)
    return False


def insert(conn, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    cols = ", ".join(f"`{c}`" for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    with conn.cursor() as cur:
        for i in range(0, len(rows), 5000):
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows[i:i + 5000])


def db_now(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP()")
        return int(cur.fetchone()[0])


def aborted_then_committed(bootstrap: str, topic: str, aborted: range, committed: range) -> None:
    """Scan-event rows with ids `aborted` in an aborted transaction, then `committed` in a committed one."""
    import orjson
    from confluent_kafka import Producer

    row = lambda i: orjson.dumps({"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1_800_000_000})  # noqa: E731
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"test-abort-{uuid.uuid4().hex[:6]}"})
    p.init_transactions(15)
    for ids, commit in ((aborted, False), (committed, True)):
        p.begin_transaction()
        for i in ids:
            p.produce(topic, value=row(i), partition=i % 3)
        (p.commit_transaction if commit else p.abort_transaction)(15)
