"""librdkafka's own log lines and error events become structlog events, deduplicated (issue 11.8)."""

from __future__ import annotations

import logging

import structlog
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from ordertrack.kafka import clients
from ordertrack.kafka.admin import KafkaAdmin
from ordertrack.settings import KafkaSettings

NOWHERE = "127.0.0.1:1"


def test_a_client_against_nothing_logs_one_debug_event_per_kind_of_line(monkeypatch):
    monkeypatch.setattr(clients, "_repeats", clients._RepeatFilter(60.0))
    admin = AdminClient(clients.routed({"bootstrap.servers": NOWHERE, "reconnect.backoff.ms": 10,
                                        "reconnect.backoff.max.ms": 20}))
    with structlog.testing.capture_logs() as logs:
        try:
            admin.list_topics(timeout=1.5)
        except KafkaException:
            pass
        admin.poll(0.2)
    fails = [e for e in logs if e["event"] == "kafka.client.log" and e["facility"] == "FAIL"]
    assert len(fails) == 1 and fails[0]["log_level"] == "debug", logs
    assert "Connection refused" in fails[0]["message"]
    assert {e["log_level"] for e in logs} == {"debug"}, logs


def test_repeats_are_counted_and_told_after_the_window(monkeypatch):
    monkeypatch.setattr(clients, "_repeats", clients._RepeatFilter(0.0))
    with structlog.testing.capture_logs() as logs:
        clients._LOGGER.log(logging.ERROR, "%s [%s] %s", "SASL", "c#producer-1", "SASL authentication failed (3)")
    assert logs[0]["log_level"] == "warning" and logs[0]["facility"] == "SASL" and "repeated" not in logs[0]

    monkeypatch.setattr(clients, "_repeats", clients._RepeatFilter(3600.0))
    with structlog.testing.capture_logs() as logs:
        for n in range(100):
            clients._LOGGER.log(logging.ERROR, "%s [%s] %s", "FAIL", "c#producer-1",
                                f"b/1: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after {n}ms)")
    assert len(logs) == 1 and logs[0]["log_level"] == "debug"
    filt = clients._repeats
    filt.window = 0.0
    assert filt.admit("debug", "c#producer-1", "FAIL",
                      "b/1: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 7ms)") == 99


def test_error_events_keep_a_callback_already_configured():
    seen: list[KafkaError] = []
    conf = clients.routed({"bootstrap.servers": NOWHERE, "error_cb": seen.append})
    with structlog.testing.capture_logs() as logs:
        conf["error_cb"](KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        conf["error_cb"](KafkaError(KafkaError._SSL, "SSL handshake failed"))
    assert [e.code() for e in seen] == [KafkaError._ALL_BROKERS_DOWN, KafkaError._SSL]
    assert [(e["code"], e["log_level"]) for e in logs] == [("_ALL_BROKERS_DOWN", "debug"), ("_SSL", "warning")]
    again = clients.routed(conf)  # routing a routed config logs each event once
    with structlog.testing.capture_logs() as logs:
        again["error_cb"](KafkaError(KafkaError._SSL, "SSL handshake failed again"))
    assert len(logs) == 1 and len(seen) == 2


def test_kafka_admin_serves_its_lines_into_the_log_when_kafka_is_away(monkeypatch, capfd):
    monkeypatch.setattr(clients, "_repeats", clients._RepeatFilter(60.0))
    admin = KafkaAdmin(KafkaSettings(bootstrap_servers=NOWHERE), timeout=1.5)
    with structlog.testing.capture_logs() as logs:
        try:
            admin.list_topics()
        except Exception as exc:  # noqa: BLE001 - the sentence is tested elsewhere
            assert "did not answer" in str(exc)
    assert any(e["event"] == "kafka.client.log" for e in logs), logs
    assert "%3|" not in capfd.readouterr().err
