"""Reading a bounded stretch of a topic: from given offsets (or a time) to the end offsets noted
before the read, failing with one sentence when Kafka goes away instead of waiting out a deadline.
Used for the watermark topic and, by the extraction check, for the dead-letter topic."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from ordertrack.errors import SecurityError, ServiceUnavailableError, TransientError
from ordertrack.kafka.clients import routed
from ordertrack.kafka.messages import position
from ordertrack.kafka.security import check_handshake, client_conf
from ordertrack.settings import KafkaSettings


class WatchfulConsumer(Consumer):
    """A consumer that notes when librdkafka reports every broker down (its error callback)."""

    def __init__(self, conf: dict) -> None:
        self.brokers_down = False
        super().__init__(routed({**conf, "error_cb": self._on_error}))

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True


def reader(kafka: KafkaSettings, client_id: str, isolation: str = "read_committed") -> WatchfulConsumer:
    check_handshake(kafka)
    return WatchfulConsumer({
        **client_conf(kafka),
        "group.id": f"{client_id}.reader.{uuid.uuid4().hex[:8]}",
        "client.id": client_id,
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })


def partitions(c: WatchfulConsumer, bootstrap: str, topic: str, missing_hint: str) -> list[int]:
    try:
        md = c.list_topics(topic, timeout=15)
    except KafkaException:
        raise ServiceUnavailableError(f"Kafka at {bootstrap} did not answer: is it running?") from None
    t = md.topics.get(topic)
    if t is not None and t.error is not None and t.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        raise SecurityError(f"Kafka refused access to the topic {topic} (TOPIC_AUTHORIZATION_FAILED): grant what "
                            "`ordertrack topics acls` lists for this pipeline.")
    if t is None or t.error is not None:
        raise ServiceUnavailableError(f"The topic {topic} does not exist: {missing_hint}.")
    return sorted(t.partitions)


def read_range(c: WatchfulConsumer, bootstrap: str, topic: str, starts: dict[int, int], ends: dict[int, int],
               deadline_seconds: float = 60) -> list[Message]:
    """The records from each partition's start offset to its end, in offset order."""
    todo = {p for p, o in starts.items() if o < ends[p]}
    if not todo:
        return []
    c.assign([TopicPartition(topic, p, starts[p]) for p in todo])
    out: list[Message] = []
    deadline = time.monotonic() + deadline_seconds
    while todo:
        if time.monotonic() > deadline:
            raise TransientError(f"Reading the topic {topic} took over {deadline_seconds:.0f}s.")
        if c.brokers_down:  # else a read cut off by an outage would wait out the whole deadline
            raise ServiceUnavailableError(f"Kafka at {bootstrap} stopped answering while {topic} was read.")
        for m in c.consume(num_messages=500, timeout=1.0):
            if err := m.error():
                if err.code() == KafkaError._PARTITION_EOF:
                    todo.discard(position(m)[1])
                    continue
                raise ServiceUnavailableError(f"Reading {topic} failed: {err.str()}")
            out.append(m)
            _, partition, offset = position(m)
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
    return out


def read_since(c: WatchfulConsumer, bootstrap: str, topic: str, since: float, missing_hint: str) -> list[Message]:
    """Every record written since `since` (unix seconds) up to the end offsets of now."""
    parts = partitions(c, bootstrap, topic, missing_hint)
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15, cached=False)[1] for p in parts}
    starts = c.offsets_for_times([TopicPartition(topic, p, int(since * 1000)) for p in parts], timeout=15)
    # offsets_for_times answers -1 for a partition with nothing written since `since`
    return read_range(c, bootstrap, topic, {tp.partition: tp.offset for tp in starts if tp.offset >= 0}, ends)
