"""`ordertrack health`: judged from a real Prometheus endpoint served by prometheus_client."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from ordertrack.health import check, judge, main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_judge_names_what_a_process_waits_for() -> None:
    text = ('# TYPE ordertrack_waiting_for_service gauge\n'
            'ordertrack_waiting_for_service{what="warehouse"} 1.0\n'
            'ordertrack_waiting_for_service{what="kafka"} 0.0\n')
    health = judge(text)
    assert not health.ok and health.sentence.startswith("waiting for warehouse ")
    producer = ('# TYPE ordertrack_producer_service_up gauge\n'
                'ordertrack_producer_service_up{service="source"} 0.0\n'
                'ordertrack_producer_service_up{service="kafka"} 1.0\n')
    assert judge(producer).sentence.startswith("waiting for source ")
    assert judge("# nothing yet\n").ok


def test_check_reads_the_process_endpoint() -> None:
    registry = CollectorRegistry()
    waiting = Gauge("ordertrack_waiting_for_service", "", ["what"], registry=registry)
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        waiting.labels("kafka").set(0)
        assert check(url).ok
        waiting.labels("kafka").set(1)
        health = check(url)
        assert not health.ok and "waiting for kafka" in health.sentence
        assert main([url]) == 1
        waiting.labels("kafka").set(0)
        assert main([url]) == 0
    finally:
        server.shutdown()
        thread.join(5)


def test_no_endpoint_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}/metrics"
    assert main([url]) == 1
    out = capsys.readouterr().out
    assert out.startswith("unhealthy: no metrics at ") and "Connection refused" in out
