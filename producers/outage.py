"""Outages of the producer's two services, the source database and Kafka.

An outage is not a failure of the window: the window in flight is aborted (its rows and watermark
are one Kafka transaction, so nothing of it is visible) and redone once the service is back. A
one-shot run stops with `OutageError` (exit 4, one sentence); the long-running loop
(`Producer.ride_out`) backs off and retries, and `OutageWatch` says once when an outage starts,
once when it ends, and keeps the `ordertrack_producer_service_up` gauge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ordertrack.errors import ServiceUnavailableError, TransientError, service_lost
from ordertrack.kafka.errors import kafka_away, kafka_error
from ordertrack.outage import Outage, OutageReport
from ordertrack.source.connection import SourceUnreachableError
from ordertrack.source.mysql_errors import error_text
from producers import metrics

if TYPE_CHECKING:
    from producers.runner import CycleResult

__all__ = ["OutageError", "OutageWatch", "Service", "as_outage", "kafka_away", "store_outage"]  # kafka_away: the poller's

Service = Literal["source", "kafka"]
SERVICES: tuple[Service, ...] = ("source", "kafka")


class OutageError(ServiceUnavailableError):
    """A service went away during a cycle; whatever window was open was aborted, nothing of it is
    visible, and the next cycle redoes it. `result` is the cycle's outcome when tables ran."""

    def __init__(self, service: Service, message: str, result: CycleResult | None = None) -> None:
        super().__init__(message)
        self.service: Service = service
        self.result = result

    def __reduce__(self) -> tuple:
        return (OutageError, (self.service, str(self), self.result))  # raised again in run-once's parent


def as_outage(exc: BaseException, where: str) -> OutageError | None:
    """`exc` as an outage of the source or Kafka, or None when it is something else (a bug, bad
    data, a missing table). `where` names what was under way, e.g. "uni_tracking_spath's window"."""
    if isinstance(exc, OutageError):
        return exc
    if isinstance(exc, SourceUnreachableError):
        return OutageError("source", str(exc))
    lost = service_lost(exc)
    if lost == "source":
        return OutageError("source", f"The source database stopped answering during {where} ({error_text(exc)}); "
                                     "nothing of it was published, and the next run redoes it.")
    if lost == "kafka":
        err = kafka_error(exc)
        assert err is not None  # service_lost says Kafka only for an exception carrying a KafkaError
        return OutageError("kafka", f"Kafka stopped answering during {where} ({err.str()}); "
                                    "nothing of it was published, and the next run redoes it.")
    return None


def store_outage(exc: ServiceUnavailableError | TransientError) -> OutageError:
    """The watermark store could not be read: Kafka is away, or a transaction on the topic is still open."""
    return OutageError("kafka", str(exc))


PRODUCER_OUTAGES = OutageReport(
    started="producer.outage.started", ended="producer.outage.ended", field="service",
    gauge=metrics.SERVICE_UP, gauge_down=0.0, describe=str,
    hint="retrying with backoff; the window in flight was aborted and is redone",
)


class OutageWatch:
    """Which services are away and since when: one `Outage` per service, reported under the
    producer's names. The backoff is `Producer.ride_out`'s; a cycle that goes through ends every
    outage at once, since it needed both services."""

    def __init__(self) -> None:
        self._outages: dict[Service, Outage] = {s: Outage(s, PRODUCER_OUTAGES) for s in SERVICES}

    @property
    def down(self) -> set[Service]:
        return {s for s, o in self._outages.items() if o.down}

    def failed(self, service: Service, error: str) -> None:
        self._outages[service].failed(error)

    def all_up(self) -> None:
        """A cycle went through: every service answered."""
        for service in SERVICES:
            metrics.SERVICE_UP.labels(service).set(1)  # also before any outage: the gauge starts known
        for outage in sorted(self._outages.values(), key=lambda o: o.since or 0.0):
            outage.recovered()
