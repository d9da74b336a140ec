"""Waiting out an outage: once-per-outage logging and what is worth waiting for."""

from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from ordertrack.errors import ConfigError, ServiceUnavailableError
from ordertrack.outage import Outage, retry_until_ok


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends():
    calls = iter([ServiceUnavailableError("Kafka at x did not answer"), ConnectionError("reset"), "ok"])

    def flaky() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    outage = Outage("kafka", first_delay=0.01)
    with capture_logs() as logs:
        assert retry_until_ok(flaky, outage) == "ok"
    assert [(e["event"], e["log_level"]) for e in logs] == [("outage.started", "warning"), ("outage.ended", "info")]
    assert logs[1]["failed_attempts"] == 2 and not outage.down


def test_configuration_errors_are_raised_at_once_not_waited_for():
    attempts = []

    def misconfigured() -> None:
        attempts.append(1)
        raise ConfigError("WAREHOUSE_URL scheme 'mysql' is not supported.")

    with pytest.raises(ConfigError):
        retry_until_ok(misconfigured, Outage("warehouse", first_delay=0.01))
    assert len(attempts) == 1


def test_a_stop_request_while_waiting_ends_the_wait_with_the_last_error():
    stop = threading.Event()
    stop.set()
    with pytest.raises(ServiceUnavailableError):
        retry_until_ok(lambda: (_ for _ in ()).throw(ServiceUnavailableError("down")), Outage("x"), stop)


def test_an_outage_survives_the_trip_from_run_once_s_producer_process():
    import pickle

    from producers.outage import OutageError

    exc = pickle.loads(pickle.dumps(OutageError("kafka", "Kafka went away", None)))
    assert (exc.service, str(exc), exc.result) == ("kafka", "Kafka went away", None)
