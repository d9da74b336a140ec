"""Exceptions the CLI turns into one plain sentence and a non-zero exit.

Terminal errors (bad config, missing tool, wrong credentials) are never retried;
`TransientError` marks the ones a retry may cure (a service still starting).
"""

from __future__ import annotations

from typing import Literal


class OrdertrackError(Exception):
    """A failure whose message is one sentence a person can act on."""

    exit_code: int = 1


class ConfigError(OrdertrackError):
    """The pipeline YAML or the environment is wrong; the message names the field and the file."""

    exit_code = 2


class MissingToolError(OrdertrackError):
    """A program the local stack needs (java, mvn, mariadbd) is not installed."""

    exit_code = 3


class ServiceUnavailableError(OrdertrackError):
    """A service (Kafka, MariaDB, the warehouse) cannot be reached."""

    exit_code = 4


class SecurityError(ServiceUnavailableError):
    """A secured connection failed: the certificate did not verify, the service does not speak TLS
    where TLS was asked for, credentials or a grant were refused. A setting to fix, never an outage
    to wait out, and never a reason to try without TLS."""


class NotCheckableYet(OrdertrackError):
    """A check has nothing to judge yet (nothing carried, nothing landed): not a data problem and
    not bad input; the same exit code as a check a service kept from running."""

    exit_code = 4


class TransientError(OrdertrackError):
    """A failure a retry may cure."""


LostService = Literal["source", "kafka"]


def service_lost(exc: BaseException) -> LostService | None:
    """Which service `exc` says went away, in a way waiting cures: the source database (its
    connection is lost) or Kafka (an error `kafka_away` accepts); None for anything else. The one
    decision behind both the one-shot commands' `as_service_error` and the producer's outages."""
    from ordertrack.kafka.errors import kafka_away, kafka_error
    from ordertrack.source.mysql_errors import connection_lost

    if connection_lost(exc):
        return "source"
    err = kafka_error(exc)
    if err is not None and kafka_away(err):
        return "kafka"
    return None


def without_secrets(text: str) -> str:
    """`text` with any password a driver repeated from its connection string masked (libpq names
    `password=...` and whole URLs in some messages)."""
    import re

    return re.sub(r"password=\S+", "password=***", re.sub(r"://([^:/@\s]+):[^@\s]+@", r"://\1:***@", text))


def as_service_error(exc: BaseException) -> ServiceUnavailableError | None:
    """The one-sentence form of a lost or refused connection raised by a client library, or None
    when `exc` is not one (then it is a bug, reported as such). One-shot commands end with it
    (exit 4); long-running ones wait the outage out instead."""
    text = without_secrets(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    from confluent_kafka import KafkaException

    from ordertrack.kafka.errors import kafka_error
    from ordertrack.source.mysql_errors import REFUSED

    lost = service_lost(exc)
    if lost == "source":
        return ServiceUnavailableError(f"The source database did not answer ({text}); run again once it is back.")
    if isinstance(exc, REFUSED):
        return ServiceUnavailableError(f"The source database refused the query ({text}).")
    if isinstance(exc, KafkaException):
        err = kafka_error(exc)
        detail = err.str() if err is not None else text
        # A KafkaException without an error object says too little to blame the request.
        if err is None or lost == "kafka":
            return ServiceUnavailableError(f"Kafka did not answer ({detail}); run again once it is back.")
        return ServiceUnavailableError(f"Kafka refused the request ({detail}).")
    import duckdb

    if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
        return ServiceUnavailableError(
            f"The DuckDB warehouse is held by another process ({text}); run again once it is released."
        )
    if type(exc).__module__.split(".")[0] == "psycopg" and type(exc).__name__ in (
            "OperationalError", "InterfaceError", "ConnectionTimeout", "AdminShutdown", "CannotConnectNow"):
        return ServiceUnavailableError(f"The PostgreSQL warehouse did not answer ({text}); run again once it is back.")
    if type(exc).__module__.split(".")[0] in ("redshift_connector", "botocore", "urllib3") and (
            "connect" in text.lower() or "timed out" in text.lower() or "connection" in type(exc).__name__.lower()):
        return ServiceUnavailableError(f"The warehouse or S3 did not answer ({text}); run again once it is back.")
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ServiceUnavailableError(f"A service did not answer ({text}); run again once it is back.")
    return None
