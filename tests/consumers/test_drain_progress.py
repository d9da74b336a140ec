"""`consume --drain` reports its progress in offsets: off a terminal, one `progress.done` event
whose total is every offset between the ledger's positions and the end offsets seen at start."""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support.waits import wait_until

pytestmark = pytest.mark.integration


def stable_ends(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> last stable offset (what a read_committed drain reads up to)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lso-{uuid.uuid4().hex[:6]}",
                  "isolation.level": "read_committed"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in parts}
    finally:
        c.close()


def aborted_then_committed(bootstrap: str, topic: str, aborted: int, committed: int) -> None:
    """Scan events in an aborted transaction (flushed first, so the broker holds them), then in
    a committed one, round-robin over partitions 0-2."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"test-progress-{uuid.uuid4().hex[:6]}"})
    p.init_transactions(15)
    for ids, commit in ((range(aborted), False), (range(1000, 1000 + committed), True)):
        p.begin_transaction()
        for i in ids:
            p.produce(topic, value=orjson.dumps({"id": i, "order_id": i, "traceSeq": 1, "pathTime": 1_800_000_000}),
                      partition=i % 3)
        p.flush(15)
        (p.commit_transaction if commit else p.abort_transaction)(15)


def progress_done(stderr: str) -> list[dict]:
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in events if e["event"] == "progress.done"]


def test_consume_drain_logs_progress_done_with_every_offset_to_pass(make_env):
    env = make_env()
    topic = env.topic("uni_tracking_spath")
    # 50 records of an aborted transaction, then 30 committed, over the three partitions: each
    # partition also holds an abort and a commit marker, offsets no message is landed from.
    aborted_then_committed(env.bootstrap, topic, 50, 30)
    partitions, offsets = 3, 50 + 30 + 2 * 3
    # The markers are written just after the producer's commit returns; until then the stable end trails.
    wait_until("every record and marker, stable", lambda: sum(stable_ends(env.bootstrap, topic).values()) == offsets,
               timeout=30)

    r = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json", ORDERTRACK_PROGRESS="on")

    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["landed"] == 30
    done = progress_done(r.stderr)
    assert len(done) == 1, r.stderr
    assert done[0]["what"] == "consume --drain" and done[0]["unit"] == "offsets"
    assert done[0]["total"] == done[0]["done"] == offsets

    # Again: nothing to land, only each partition's last commit marker to pass (the ledger's
    # positions follow the landed messages, not the markers after them).
    again = env.cli("consume", "--drain", "--table", "uni_tracking_spath", "--json", ORDERTRACK_PROGRESS="on")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["landed"] == 0
    assert [(e["done"], e["total"]) for e in progress_done(again.stderr)] == [(partitions, partitions)]
