"""How far landing is behind: per table and partition, in messages and in minutes.

Messages: the last stable offset (what read_committed readers can see) minus the ledger's next
offset. Minutes: the age of the oldest committed message not landed yet, read from Kafka at the
ledger's next offset. Control records (transaction markers) take offsets too, so an idle
partition can show a lag of one or two messages and zero minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from ordertrack.config import PipelineConfig
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import WarehouseEngine
from consumers import metrics
from consumers.drain import consumer_config


@dataclass
class PartitionLag:
    table: str
    topic: str
    partition: int
    landed_up_to: int
    end_offset: int
    lag_messages: int
    lag_minutes: float


def measure_lag(config: PipelineConfig, settings: Settings, engine: WarehouseEngine, specs: list[TableSpec]) -> list[PartitionLag]:
    conf = consumer_config(config, settings) | {"group.id": f"{config.pipeline.name}.lag-probe", "enable.partition.eof": False}
    c = Consumer(conf)
    out = []
    try:
        for spec in specs:
            md = c.list_topics(spec.topic, timeout=15).topics[spec.topic]
            landed = engine.next_offsets(spec.topic)
            for p in sorted(md.partitions):
                low, end = c.get_watermark_offsets(TopicPartition(spec.topic, p), timeout=15, cached=False)
                nxt = max(landed.get(p, 0), low)
                lag = max(0, end - nxt)
                minutes = 0.0
                if lag:
                    c.assign([TopicPartition(spec.topic, p, nxt)])
                    m = c.poll(5)
                    if m is not None and not m.error() and m.offset() < end:
                        minutes = max(0.0, (time.time() * 1000 - m.timestamp()[1]) / 60000)
                out.append(PartitionLag(spec.name, spec.topic, p, nxt, end, lag, round(minutes, 2)))
                metrics.LAG_MESSAGES.labels(spec.name, str(p)).set(lag)
            metrics.LAG_SECONDS.labels(spec.name).set(60 * max((x.lag_minutes for x in out if x.table == spec.name), default=0))
    finally:
        c.close()
    return out
