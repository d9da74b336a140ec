"""confluent-kafka (our producer) and aiokafka (faust's client) against the real Kafka 4 broker."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer

from ordertrack.kafka.admin import KafkaAdmin, TopicSpec
from ordertrack.settings import KafkaSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_bootstrap):
    admin = KafkaAdmin(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    name = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    admin.ensure_topics([TopicSpec(name, 2, {}, "table")])
    yield name
    admin.delete_topics([name])


def test_confluent_producer_to_aiokafka_consumer(kafka_bootstrap, topic):
    p = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(50)}
    for k, v in sent.items():
        p.produce(topic, key=k, value=v, headers=[("window_id", b"w1")])
    assert p.flush(15) == 0

    async def consume() -> dict[bytes, tuple[bytes, list]]:
        c = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
            isolation_level="read_committed", group_id=None, enable_auto_commit=False,
        )
        await c.start()
        got = {}
        try:
            while len(got) < len(sent):
                batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), 20)
                for records in batch.values():
                    for r in records:
                        got[r.key] = (r.value, list(r.headers))
        finally:
            await c.stop()
        return got

    got = asyncio.run(consume())
    assert {k: v for k, (v, _) in got.items()} == sent
    assert all(h == [("window_id", b"w1")] for _, h in got.values())


def test_aiokafka_producer_to_confluent_consumer(kafka_bootstrap, topic):
    sent = {f"a{i}".encode(): f"b{i}".encode() for i in range(50)}

    async def produce() -> None:
        p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
        await p.start()
        try:
            for k, v in sent.items():
                await p.send(topic, key=k, value=v)
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(produce())
    c = Consumer({
        "bootstrap.servers": kafka_bootstrap, "group.id": f"test-{uuid.uuid4().hex[:6]}",
        "auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.auto.commit": False,
    })
    c.subscribe([topic])
    got = {}
    try:
        for _ in range(60):
            for m in c.consume(num_messages=100, timeout=1.0):
                assert m.error() is None
                got[m.key()] = m.value()
            if len(got) == len(sent):
                break
    finally:
        c.close()
    assert got == sent


def test_aborted_transaction_is_invisible_to_read_committed_aiokafka(kafka_bootstrap, topic):
    """The promise consumers rely on: aborted producer transactions never reach them."""
    p = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"test-tx-{uuid.uuid4().hex[:6]}"})
    p.init_transactions(15)
    p.begin_transaction()
    p.produce(topic, key=b"aborted", value=b"x", partition=0)
    p.abort_transaction(15)
    p.begin_transaction()
    p.produce(topic, key=b"committed", value=b"y", partition=0)
    p.commit_transaction(15)

    async def consume() -> list[bytes]:
        c = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             isolation_level="read_committed", group_id=None)
        await c.start()
        keys: list[bytes] = []
        try:
            for _ in range(10):
                for records in (await c.getmany(timeout_ms=500)).values():
                    keys += [r.key for r in records]
                if b"committed" in keys:
                    break
        finally:
            await c.stop()
        return keys

    assert asyncio.run(consume()) == [b"committed"]


def test_topics_are_created_with_config_and_deleted(kafka_bootstrap):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = KafkaAdmin(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    name = f"test.admin.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, 4, {"retention.ms": "3600000", "cleanup.policy": "delete"}, "table")
    assert admin.ensure_topics([spec]) == [name]
    assert admin.ensure_topics([spec]) == []  # idempotent
    assert admin.list_topics()[name] == 4
    raw = AdminClient({"bootstrap.servers": kafka_bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    cfg = raw.describe_configs([res])[res].result(15)
    assert cfg["retention.ms"].value == "3600000"
    admin.delete_topics([name])
    for _ in range(20):  # deletion is asynchronous in the controller
        if name not in admin.list_topics():
            break
        time.sleep(0.25)
    assert name not in admin.list_topics()
