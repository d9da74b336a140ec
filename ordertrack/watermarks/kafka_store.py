"""Watermarks in a compacted Kafka topic, keyed by table.

A window's watermark is written by the producer inside the window's own transaction (see
`producers.poller`); this store reads them back and writes operator moves (seed, set, import).

Bounded windows (`produce --start ... --end-time ...`, a backfill) write records too, with status
`backfill` under the key `<table>.backfill`: `latest()` and `history()` leave them out, so they
never move, or pass for, a table's live position.

Reading is `read_committed`, and a read_committed reader stops at the last stable offset: an
open transaction on the topic (another table committing right now, or a crashed producer whose
transaction has not been aborted yet) hides every record written after it. So `latest()` first
notes the high watermark, then waits until the stable offset has passed it, bounded by the
transaction timeout, before it trusts what it read.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ordertrack.errors import ServiceUnavailableError, TransientError
from ordertrack.kafka.clients import routed
from ordertrack.log import get_logger
from ordertrack.watermarks.model import Watermark

log = get_logger(__name__)


class _Reader(Consumer):
    """A consumer that notes when librdkafka reports every broker down (its error callback)."""

    def __init__(self, conf: dict) -> None:
        self.brokers_down = False
        super().__init__(routed({**conf, "error_cb": self._on_error}))

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True


class KafkaWatermarkStore:
    def __init__(self, bootstrap_servers: str, topic: str, *, wait_seconds: float = 300.0, client_id: str = "ordertrack") -> None:
        self.bootstrap = bootstrap_servers
        self.topic = topic
        self.wait_seconds = wait_seconds
        self.client_id = client_id

    def _consumer(self, isolation: str) -> "_Reader":
        return _Reader({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"{self.client_id}.watermark-reader.{uuid.uuid4().hex[:8]}",
            "client.id": f"{self.client_id}.watermarks",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        })

    def _partitions(self, c: _Reader) -> list[int]:
        try:
            md = c.list_topics(self.topic, timeout=15)
        except KafkaException:
            raise ServiceUnavailableError(f"Kafka at {self.bootstrap} did not answer: is it running?") from None
        t = md.topics.get(self.topic)
        if t is None or t.error is not None:
            raise ServiceUnavailableError(
                f"The watermark topic {self.topic} does not exist: run `ordertrack topics create`."
            )
        return sorted(t.partitions)

    def latest(self) -> dict[str, Watermark]:
        committed = self._consumer("read_committed")
        try:
            parts = self._partitions(committed)
            hwm = self._high_watermarks(parts)
            deadline = time.monotonic() + self.wait_seconds
            while True:
                # Under read_committed the "high" offset is the last stable offset.
                stable = {p: committed.get_watermark_offsets(TopicPartition(self.topic, p), timeout=15, cached=False)[1]
                          for p in parts}
                if all(stable[p] >= hwm[p] for p in parts):
                    break
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"An open Kafka transaction on {self.topic} (a producer that crashed mid-window?) hides "
                        f"the newest watermarks; it is aborted when that table's producer restarts or after "
                        f"kafka.transaction_timeout_seconds."
                    )
                time.sleep(0.2)
            return self._read_all(committed, parts, hwm)
        finally:
            committed.close()

    def _high_watermarks(self, parts: list[int]) -> dict[int, int]:
        c = self._consumer("read_uncommitted")
        try:
            return {p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=15, cached=False)[1] for p in parts}
        finally:
            c.close()

    def _read_all(self, c: _Reader, parts: list[int], ends: dict[int, int]) -> dict[str, Watermark]:
        marks: dict[str, Watermark] = {}
        for wm in self._read(c, {p: 0 for p in parts}, ends):
            if wm.live:
                marks[wm.table] = wm  # later records win: the same order compaction keeps
        return marks

    def history(self, since: float, *, include_backfill: bool = False) -> list[Watermark]:
        """Every committed record written since `since` (unix seconds), oldest first: the windows
        the producer published, with their row counts; backfill windows only when asked for.
        Records younger than the topic's `min.compaction.lag.ms` (a day, see `pipeline_topics`)
        are never compacted away."""
        c = self._consumer("read_committed")
        try:
            parts = self._partitions(c)
            ends = {p: c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=15, cached=False)[1] for p in parts}
            starts = c.offsets_for_times([TopicPartition(self.topic, p, int(since * 1000)) for p in parts], timeout=15)
            # offsets_for_times answers -1 for a partition with nothing written since `since`
            marks = self._read(c, {tp.partition: tp.offset for tp in starts if tp.offset >= 0}, ends)
            return sorted((m for m in marks if include_backfill or m.live), key=lambda w: w.written_at)
        finally:
            c.close()

    def _read(self, c: _Reader, starts: dict[int, int], ends: dict[int, int]) -> list[Watermark]:
        """The records from each partition's start offset to its end, in offset order."""
        todo = {p for p, o in starts.items() if o < ends[p]}
        if not todo:
            return []
        c.assign([TopicPartition(self.topic, p, starts[p]) for p in todo])
        out: list[Watermark] = []
        deadline = time.monotonic() + 60
        while todo:
            if time.monotonic() > deadline:
                raise TransientError(f"Reading the watermark topic {self.topic} took over 60s.")
            if c.brokers_down:  # else a read cut off by an outage would wait out the whole deadline
                raise ServiceUnavailableError(f"Kafka at {self.bootstrap} stopped answering while {self.topic} was read.")
            for m in c.consume(num_messages=500, timeout=1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        todo.discard(m.partition())
                        continue
                    raise ServiceUnavailableError(f"Reading {self.topic} failed: {m.error().str()}")
                if m.value() is not None:
                    out.append(Watermark.from_json(m.value()))
                if m.offset() + 1 >= ends[m.partition()]:
                    todo.discard(m.partition())
        return out

    def write(self, marks: list[Watermark]) -> None:
        if not marks:
            return
        p = Producer(routed({
            "bootstrap.servers": self.bootstrap,
            "transactional.id": f"{self.client_id}.watermarks-admin",
            "client.id": f"{self.client_id}.watermarks-admin",
        }))
        try:
            p.init_transactions(30)
            p.begin_transaction()
            for wm in marks:
                p.produce(self.topic, key=wm.key, value=wm.to_json())
            p.commit_transaction(30)
        except KafkaException as exc:
            raise ServiceUnavailableError(f"Writing watermarks to {self.topic} failed: {exc.args[0].str()}") from None
        for wm in marks:
            log.info("watermark.written", table=wm.table, position=wm.position, status=wm.status)
