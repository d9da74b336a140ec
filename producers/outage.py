"""Outages of the producer's two services, the source database and Kafka.

An outage is not a failure of the window: the window in flight is aborted (its rows and watermark
are one Kafka transaction, so nothing of it is visible) and redone once the service is back. A
one-shot run stops with `OutageError` (exit 4, one sentence); the long-running loop
(`Producer.ride_out`) backs off and retries, and `OutageWatch` says once when an outage starts,
once when it ends, and keeps the `ordertrack_producer_service_up` gauge.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from confluent_kafka import KafkaError, KafkaException

from ordertrack.errors import ServiceUnavailableError, TransientError
from ordertrack.kafka.errors import kafka_away
from ordertrack.log import get_logger
from ordertrack.source.connection import SourceUnreachableError
from ordertrack.source.mysql_errors import connection_lost, error_text
from producers import metrics

if TYPE_CHECKING:
    from producers.runner import CycleResult

log = get_logger(__name__)

Service = Literal["source", "kafka"]

class OutageError(ServiceUnavailableError):
    """A service went away during a cycle; whatever window was open was aborted, nothing of it is
    visible, and the next cycle redoes it. `result` is the cycle's outcome when tables ran."""

    def __init__(self, service: Service, message: str, result: CycleResult | None = None) -> None:
        super().__init__(message)
        self.service: Service = service
        self.result = result


def as_outage(exc: BaseException, where: str) -> OutageError | None:
    """`exc` as an outage of the source or Kafka, or None when it is something else (a bug, bad
    data, a missing table). `where` names what was under way, e.g. "uni_tracking_spath's window"."""
    if isinstance(exc, OutageError):
        return exc
    if isinstance(exc, SourceUnreachableError):
        return OutageError("source", str(exc))
    if connection_lost(exc):
        return OutageError("source", f"The source database stopped answering during {where} ({error_text(exc)}); "
                                     "nothing of it was published, and the next run redoes it.")
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError) and kafka_away(exc.args[0]):
        return OutageError("kafka", f"Kafka stopped answering during {where} ({exc.args[0].str()}); "
                                    "nothing of it was published, and the next run redoes it.")
    return None


def store_outage(exc: ServiceUnavailableError | TransientError) -> OutageError:
    """The watermark store could not be read: Kafka is away, or a transaction on the topic is still open."""
    return OutageError("kafka", str(exc))


class OutageWatch:
    """Which services are away and since when. Says so once when an outage starts (warning) and once
    when it ends (info), however many retries lie between, and keeps the gauge."""

    def __init__(self) -> None:
        self._since: dict[Service, float] = {}  # service -> monotonic time its outage began
        self._failures: dict[Service, int] = {}

    @property
    def down(self) -> set[Service]:
        return set(self._since)

    def failed(self, service: Service, error: str) -> None:
        self._failures[service] = self._failures.get(service, 0) + 1
        if service in self._since:
            return
        self._since[service] = time.monotonic()
        metrics.SERVICE_UP.labels(service).set(0)
        log.warning("producer.outage.started", service=service, error=error,
                    hint="retrying with backoff; the window in flight was aborted and is redone")

    def all_up(self) -> None:
        """A cycle went through: every service answered."""
        for service in ("source", "kafka"):
            metrics.SERVICE_UP.labels(service).set(1)
        for service, since in list(self._since.items()):
            log.info("producer.outage.ended", service=service, seconds=round(time.monotonic() - since, 1),
                     failed_attempts=self._failures.get(service, 0))
        self._since.clear()
        self._failures.clear()
