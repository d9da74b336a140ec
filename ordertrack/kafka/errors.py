"""Which Kafka errors waiting cures: shared by the producer's outage handling and the CLI's error boundary."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

# Errors of a broker (or its coordinator) that is away or moving, besides those librdkafka marks
# retriable itself. `_UNKNOWN_PARTITION` ("Local: Unknown partition") is what an offsets query
# answers when the client lost its metadata because no broker answers (seen in a fresh-clone CI
# run: the producer's watermark read during a Kafka cut).
KAFKA_AWAY = frozenset({
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT,
    KafkaError._RESOLVE, KafkaError._TIMED_OUT_QUEUE, KafkaError._WAIT_COORD, KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION, KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION,
})


def kafka_away(err: KafkaError) -> bool:
    """True for a Kafka error that waiting cures (broker down, coordinator moving, timeouts)."""
    return not err.fatal() and (err.retriable() or err.code() in KAFKA_AWAY)


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The `KafkaError` a client call raised inside a `KafkaException`, else None."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None
