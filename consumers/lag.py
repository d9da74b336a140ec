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

from consumers import metrics
from consumers.drain import consumer_config
from consumers.ledger import ledger_ahead_error
from ordertrack.config import PipelineConfig
from ordertrack.kafka.messages import position
from ordertrack.kafka.security import check_handshake
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import WarehouseEngine


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
    check_handshake(settings.kafka)
    conf = consumer_config(config, settings) | {"group.id": f"{config.pipeline.name}.lag-probe", "enable.partition.eof": True}
    c = Consumer(conf)
    out = []
    try:
        for spec in specs:
            md = c.list_topics(spec.topic, timeout=15).topics[spec.topic]
            landed = engine.next_offsets(spec.topic)
            for p in sorted(md.partitions):
                low, end = c.get_watermark_offsets(TopicPartition(spec.topic, p), timeout=15, cached=False)
                if landed.get(p, 0) > end:  # never "no lag" for a topic whose offsets restarted
                    raise ledger_ahead_error(spec, p, landed[p], end)
                nxt = max(landed.get(p, 0), low)
                out.append(PartitionLag(spec.name, spec.topic, p, nxt, end, max(0, end - nxt), 0.0))
        _oldest_unlanded_ages(c, [x for x in out if x.lag_messages])
    finally:
        c.close()
    for spec in specs:
        mine = [x for x in out if x.table == spec.name]
        for x in mine:
            metrics.LAG_MESSAGES.labels(spec.name, str(x.partition)).set(x.lag_messages)
        metrics.LAG_SECONDS.labels(spec.name).set(60 * max((x.lag_minutes for x in mine), default=0))
    return out


def _oldest_unlanded_ages(c: Consumer, lagging: list[PartitionLag]) -> None:
    """Read the first committed message at each lagging partition's next offset, all partitions at
    once; a partition holding only transaction markers there answers with end-of-partition at once."""
    if not lagging:
        return
    # keyed as messages name their partition: an error event may name none
    todo: dict[tuple[str | None, int | None], PartitionLag] = {(x.topic, x.partition): x for x in lagging}
    c.assign([TopicPartition(x.topic, x.partition, x.landed_up_to) for x in lagging])
    deadline = time.monotonic() + 15
    while todo and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        x = todo.pop((m.topic(), m.partition()), None)
        if x is None or m.error():
            continue  # end of partition (only markers left) or an error: the age stays 0
        if position(m)[2] < x.end_offset:
            x.lag_minutes = round(max(0.0, (time.time() * 1000 - m.timestamp()[1]) / 60000), 2)
