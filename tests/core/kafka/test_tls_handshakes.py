"""Real TLS handshakes of the Kafka client (librdkafka's OpenSSL) against a local TLS endpoint
that presents a bad certificate: each is refused, and told as the failure it is. A broker cannot
be given an expired or misnamed certificate per test; the handshake is the same before any Kafka
byte is exchanged, so a plain TLS server shows what the client sees."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ordertrack.errors import SecurityError
from ordertrack.kafka.security import check_handshake
from ordertrack.settings import KafkaSettings
from ordertrack.stack.tls import Issued, issue_cert, make_ca


@contextmanager
def endpoint(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that hands each connection to `handle`, then closes it."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            try:
                handle(conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{srv.getsockname()[1]}"
    finally:
        done.set()
        t.join(5)
        srv.close()


def tls_endpoint(cert: Issued):  # noqa: ANN201 - a context manager, as `endpoint`
    """A TLS server presenting `cert`: each connection is handshaken, then closed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))

    def handshake(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    return endpoint(handshake)


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> tuple[Issued, Path]:
    d = tmp_path_factory.mktemp("tls")
    return make_ca(d, "ca"), d


def refused(bootstrap: str, ca_path: Path) -> str:
    k = KafkaSettings(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_ca_location=str(ca_path))
    with pytest.raises(SecurityError) as e:
        check_handshake(k, timeout=20)
    return str(e.value)


def test_an_expired_broker_certificate_is_refused(ca) -> None:
    authority, d = ca
    now = dt.datetime.now(dt.timezone.utc)
    cert = issue_cert(authority, d, "expired", cn="localhost", sans=["127.0.0.1"],
                      not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
    with tls_endpoint(cert) as bootstrap:
        assert "expired" in refused(bootstrap, authority.cert_path)


def test_a_certificate_for_another_host_is_refused(ca) -> None:
    authority, d = ca
    cert = issue_cert(authority, d, "elsewhere", cn="elsewhere", sans=["kafka.example.com"])
    with tls_endpoint(cert) as bootstrap:
        sentence = refused(bootstrap, authority.cert_path)
    assert "does not name the host" in sentence and "KAFKA_BOOTSTRAP_SERVERS" in sentence


def test_a_certificate_from_another_ca_is_refused(ca, tmp_path) -> None:
    authority, d = ca
    other = make_ca(tmp_path, "other", cn="someone else's CA")
    cert = issue_cert(other, tmp_path, "server", cn="localhost", sans=["127.0.0.1"])
    with tls_endpoint(cert) as bootstrap:
        assert "KAFKA_SSL_CA_LOCATION" in refused(bootstrap, authority.cert_path)


def resetting_endpoint():  # noqa: ANN201 - a context manager, as `endpoint`
    """Accepts and resets every connection: a load balancer or TLS proxy with no broker behind it."""
    import struct

    return endpoint(lambda conn: conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)))


def test_a_proxy_with_nothing_behind_it_is_an_outage_not_a_plaintext_listener(ca, monkeypatch) -> None:
    """librdkafka guesses "connecting to a PLAINTEXT broker listener?" for any disconnect during the
    handshake; only a plaintext Kafka answer confirms it. Here nothing answers: the probe judges
    nothing, and the caller's outage handling waits."""
    authority, _ = ca
    with resetting_endpoint() as bootstrap:
        k = KafkaSettings(bootstrap_servers=bootstrap, security_protocol="SSL",
                          ssl_ca_location=str(authority.cert_path))
        check_handshake(k, timeout=6)  # returns: not a security failure
        # What made the difference: librdkafka did guess a plaintext listener, and the plaintext
        # probe found none. Were it to find one, the same handshake failure would be the verdict.
        from ordertrack.kafka import security

        monkeypatch.setattr(security, "_answers_plaintext_kafka", lambda host, port: True)
        with pytest.raises(SecurityError) as e:
            check_handshake(k, timeout=6)
        assert "plaintext listener" in str(e.value)
