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

from confluent_kafka import KafkaException, Producer, TopicPartition

from ordertrack.errors import ServiceUnavailableError, TransientError
from ordertrack.kafka.clients import routed
from ordertrack.kafka.reader import WatchfulConsumer, partitions, read_range, read_since, reader
from ordertrack.kafka.security import client_conf, refusal
from ordertrack.log import get_logger
from ordertrack.settings import KafkaSettings
from ordertrack.watermarks.model import Watermark

log = get_logger(__name__)


MISSING_HINT = "run `ordertrack topics create`"


class KafkaWatermarkStore:
    def __init__(self, kafka: KafkaSettings, topic: str, *, wait_seconds: float = 300.0, client_id: str = "ordertrack") -> None:
        self.kafka = kafka
        self.bootstrap = kafka.bootstrap_servers
        self.topic = topic
        self.wait_seconds = wait_seconds
        self.client_id = client_id

    def _consumer(self, isolation: str) -> WatchfulConsumer:
        return reader(self.kafka, f"{self.client_id}.watermarks", isolation)

    def _partitions(self, c: WatchfulConsumer) -> list[int]:
        return partitions(c, self.bootstrap, self.topic, MISSING_HINT)

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

    def _read_all(self, c: WatchfulConsumer, parts: list[int], ends: dict[int, int]) -> dict[str, Watermark]:
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
            marks = [Watermark.from_json(v) for m in read_since(c, self.bootstrap, self.topic, since, MISSING_HINT)
                     if (v := m.value()) is not None]
            return sorted((m for m in marks if include_backfill or m.live), key=lambda w: w.written_at)
        finally:
            c.close()

    def _read(self, c: WatchfulConsumer, starts: dict[int, int], ends: dict[int, int]) -> list[Watermark]:
        return [Watermark.from_json(v) for m in read_range(c, self.bootstrap, self.topic, starts, ends)
                if (v := m.value()) is not None]

    def write(self, marks: list[Watermark]) -> None:
        if not marks:
            return
        p = Producer(routed({
            **client_conf(self.kafka),
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
            refused = refusal(exc.args[0], self.kafka, f"{self.client_id}.watermarks-admin (writing {self.topic})")
            if refused is not None:
                raise refused from None
            raise ServiceUnavailableError(f"Writing watermarks to {self.topic} failed: {exc.args[0].str()}") from None
        for wm in marks:
            log.info("watermark.written", table=wm.table, position=wm.position, status=wm.status)
