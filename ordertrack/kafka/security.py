"""One set of Kafka security settings, turned into what each client library takes.

* `client_conf`: librdkafka's properties (confluent-kafka's producer, admin and consumers);
* `faust_credentials`: faust's credentials for its aiokafka driver. faust picks SASL_PLAINTEXT
  for SASL credentials without an `ssl_context`; the protocol it would use is checked against
  the configured one, so credentials are never sent in clear by a library's fallback;
* `check_handshake`: before a command relies on a secured cluster, one metadata request proves
  the TLS handshake and the login, or ends the command with one sentence naming the setting to
  fix (`SecurityError`, exit 4). librdkafka itself only logs such failures and retries until a
  timeout, which would read as "Kafka is away" and be waited out.
* `refusal`: the sentence for a request the broker refused for lack of an ACL.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
from typing import Any

from confluent_kafka import KafkaError

from ordertrack.errors import ConfigError, SecurityError
from ordertrack.settings import KafkaSettings
from ordertrack.tls import TlsFailure, client_context, diagnose_certificate, tls_failure

AUTHORIZATION_ERRORS = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "the topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "the consumer group",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "the transactional id",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "the cluster",
}


def client_conf(k: KafkaSettings) -> dict[str, Any]:
    """`bootstrap.servers` and the security properties of `k`, for any confluent-kafka client."""
    conf: dict[str, Any] = {"bootstrap.servers": k.bootstrap_servers, "security.protocol": k.security_protocol}
    if k.tls:
        conf["ssl.endpoint.identification.algorithm"] = "https" if k.ssl_endpoint_identification else "none"
        if k.ssl_ca_location:
            conf["ssl.ca.location"] = k.ssl_ca_location
        if k.ssl_certificate_location:
            conf["ssl.certificate.location"] = k.ssl_certificate_location
            conf["ssl.key.location"] = k.ssl_key_location
            if k.ssl_key_password is not None:
                conf["ssl.key.password"] = k.ssl_key_password.get_secret_value()
    if k.sasl:
        conf["sasl.mechanism"] = k.sasl_mechanism
        if k.sasl_mechanism == "OAUTHBEARER":
            conf["oauth_cb"] = _MskToken(k).confluent_cb
        else:
            assert k.sasl_password is not None  # the settings' validator requires it
            conf["sasl.username"] = k.sasl_username
            conf["sasl.password"] = k.sasl_password.get_secret_value()
    return conf


def ssl_context(k: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context aiokafka takes, or None when the protocol has no TLS."""
    if not k.tls:
        return None
    try:
        return client_context(
            k.ssl_ca_location, verify=True, check_hostname=k.ssl_endpoint_identification,
            cert=k.ssl_certificate_location, key=k.ssl_key_location,
            key_password=k.ssl_key_password.get_secret_value() if k.ssl_key_password else None)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"The Kafka TLS files could not be read ({type(exc).__name__}: "
                            f"{getattr(exc, 'strerror', None) or exc}): check KAFKA_SSL_CA_LOCATION, "
                            "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION.") from None


def faust_credentials(k: KafkaSettings) -> Any:
    """faust's `broker_credentials` for `k` (None for PLAINTEXT)."""
    from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    ctx = ssl_context(k)
    creds: Any
    if k.security_protocol == "PLAINTEXT":
        return None
    if k.security_protocol == "SSL":
        creds = SSLCredentials(ctx)
    elif k.sasl_mechanism == "OAUTHBEARER":
        creds = OAuthCredentials(oauth_cb=_MskToken(k).aiokafka_provider(), ssl_context=ctx)
    else:
        assert k.sasl_password is not None
        creds = SASLCredentials(username=k.sasl_username, password=k.sasl_password.get_secret_value(),
                                mechanism=k.sasl_mechanism, ssl_context=ctx)
    used = credentials_to_aiokafka_auth(creds)["security_protocol"]
    if used != k.security_protocol:  # a library default must never decide the protocol
        raise SecurityError(f"The worker's Kafka client would connect with {used}, not KAFKA_SECURITY_PROTOCOL="
                            f"{k.security_protocol}: refusing to start.")
    return creds


class _MskToken:
    """Amazon MSK IAM tokens (SASL OAUTHBEARER), signed locally with the AWS credentials boto3
    finds (environment, profile, instance role) by AWS's signer library."""

    def __init__(self, k: KafkaSettings) -> None:
        import os

        import boto3

        # boto3 reads AWS_DEFAULT_REGION and its config file, not AWS_REGION (nor a `.env` file).
        region = (k.sasl_oauthbearer_region or os.environ.get("AWS_REGION")
                  or boto3.session.Session().region_name)
        if not region:
            raise ConfigError("KAFKA_SASL_OAUTHBEARER_PROVIDER=aws_msk_iam needs the cluster's region: set "
                              "KAFKA_SASL_OAUTHBEARER_REGION.")
        self.region: str = region
        self._lock = threading.Lock()

    def token(self) -> tuple[str, float]:
        """(token, expiry in unix seconds)."""
        try:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
        except ImportError:  # pragma: no cover - a dependency of the distribution
            raise SecurityError("KAFKA_SASL_OAUTHBEARER_PROVIDER=aws_msk_iam needs the package "
                                "aws-msk-iam-sasl-signer-python.") from None
        with self._lock:
            try:
                token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(self.region)
            except Exception as exc:  # botocore's NoCredentialsError and friends
                raise SecurityError(f"No MSK IAM token could be signed for region {self.region} "
                                    f"({type(exc).__name__}): check the AWS credentials and "
                                    "KAFKA_SASL_OAUTHBEARER_REGION.") from None
        return token, expiry_ms / 1000

    def confluent_cb(self, _config: str) -> tuple[str, float]:
        return self.token()

    def aiokafka_provider(self) -> Any:
        from aiokafka.abc import AbstractTokenProvider

        outer = self

        class Provider(AbstractTokenProvider):
            async def token(self) -> str:
                return (await asyncio.get_running_loop().run_in_executor(None, outer.token))[0]

        return Provider()


# -- failing closed ----------------------------------------------------------------------------

_BROKER_NAME = re.compile(r"\b(?:plaintext|ssl|sasl_plaintext|sasl_ssl)://\S+?(?:/\S+)?:\s", re.IGNORECASE)
_SASL_CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
                         KafkaError.UNSUPPORTED_SASL_MECHANISM, KafkaError.ILLEGAL_SASL_STATE})


def security_sentence(err: KafkaError, k: KafkaSettings) -> str | None:
    """The sentence for a TLS or SASL failure librdkafka reported, or None for any other error
    (a broker away above all: that is an outage, waited out, never a reason to stop)."""
    # librdkafka names the broker as `sasl_ssl://host:port/id: ...`: its protocol is not a TLS failure.
    text = _BROKER_NAME.sub("", err.str() or "")
    low, code = text.lower(), err.code()
    where = f"Kafka at {k.bootstrap_servers}"
    tls_kind = tls_failure(text) if k.tls else None
    if code in _SASL_CODES and (tls_kind is None or "sasl" in low):
        if code == KafkaError.UNSUPPORTED_SASL_MECHANISM or ("mechanism" in low and "not enabled" in low):
            return f"{where} does not accept SASL mechanism {k.sasl_mechanism}: check KAFKA_SASL_MECHANISM."
        if k.sasl_mechanism == "OAUTHBEARER":
            return f"{where} refused the MSK IAM token: check the AWS credentials and KAFKA_SASL_OAUTHBEARER_REGION."
        if k.sasl:
            return (f"{where} refused SASL user {k.sasl_username!r} ({k.sasl_mechanism}): check KAFKA_SASL_USERNAME "
                    "and KAFKA_SASL_PASSWORD.")
    # A handshake failure is `_SSL`; some reach us as a transport error, and those count only when
    # their words are a TLS failure's own (never "connection refused" or a timeout).
    if tls_kind is None or not (code in (KafkaError._SSL, *_SASL_CODES) or
                                (code == KafkaError._TRANSPORT and tls_kind != "other")):
        return None
    return tls_sentence(tls_kind, k, text)


def tls_sentence(kind: TlsFailure, k: KafkaSettings, text: str = "") -> str:
    where = f"Kafka at {k.bootstrap_servers}"
    ca = (f"KAFKA_SSL_CA_LOCATION ({k.ssl_ca_location})" if k.ssl_ca_location
          else "the system's CAs (KAFKA_SSL_CA_LOCATION is not set)")
    return {
        "not_tls": f"{where} did not answer in TLS (a plaintext listener?), and KAFKA_SECURITY_PROTOCOL="
                   f"{k.security_protocol} requires it: check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL "
                   "(nothing falls back to plaintext).",
        "expired": f"{where} presented an expired (or not yet valid) certificate: the broker's certificate "
                   "must be renewed.",
        "wrong_host": f"{where} presented a certificate that does not name the host connected to: use a name it "
                      "carries in KAFKA_BOOTSTRAP_SERVERS.",
        "untrusted": f"{where} presented a certificate that {ca} does not verify: check KAFKA_SSL_CA_LOCATION.",
        "client_cert": f"{where} requires a client certificate it trusts (mutual TLS): check "
                       "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION.",
        "other": f"The TLS handshake with {where} failed ({text[:200]}): check KAFKA_SECURITY_PROTOCOL and the "
                 "KAFKA_SSL_ settings.",
    }[kind]


def refusal(err: KafkaError, k: KafkaSettings, resource: str) -> SecurityError | None:
    """A request refused for lack of an ACL, as one sentence naming the principal and resource."""
    what = AUTHORIZATION_ERRORS.get(err.code())
    if what is None:
        return None
    who = f"user {k.sasl_username!r}" if k.sasl and k.sasl_username else "this client's principal"
    return SecurityError(f"Kafka refused {who} access to {what} {resource} ({err.name()}): grant what "
                         "`ordertrack topics acls` lists for this pipeline.")


REPEATS_TO_JUDGE = 3
_verified: set[tuple[str, ...]] = set()
_verified_lock = threading.Lock()


def check_handshake(k: KafkaSettings, timeout: float = 15.0) -> None:
    """Prove the TLS handshake and SASL login against `k` once per process: raise SecurityError
    with the failure's sentence. A broker that does not answer at all is not judged (an outage:
    the caller's own handling waits it out or says so); the check runs again next time."""
    if k.security_protocol == "PLAINTEXT":
        return
    key = (k.bootstrap_servers, k.security_protocol, str(k.sasl_mechanism), str(k.sasl_username),
           str(k.ssl_ca_location), str(k.ssl_certificate_location))
    with _verified_lock:
        if key in _verified:
            return
    from confluent_kafka.admin import AdminClient

    from ordertrack.kafka.clients import routed

    # A misconfiguration fails every attempt the same way (librdkafka retries within a second);
    # a broker restarting may cut one handshake short. Only a repeated failure is judged.
    counts: dict[str, int] = {}
    seen: list[str] = []

    def on_error(err: KafkaError) -> None:
        sentence = security_sentence(err, k)
        if sentence is not None:
            counts[sentence] = counts.get(sentence, 0) + 1
            if counts[sentence] == REPEATS_TO_JUDGE:
                seen.append(sentence)

    # The probe's own failures are told by the one sentence below: its client logs nothing (the
    # project's logger, so librdkafka writes nothing to stderr either, at the lowest level) and
    # its errors reach only `on_error`.
    conf: dict[str, Any] = {**routed(client_conf(k)), "error_cb": on_error, "log_level": 0,
                            "client.id": "ordertrack.handshake", "reconnect.backoff.max.ms": 1000}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not seen:
            try:
                admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            except Exception:
                admin.poll(0.1)  # hands over the queued error events
                continue
            admin.poll(0)
            if not seen:
                with _verified_lock:
                    _verified.add(key)
                return
    finally:
        admin.poll(0)
    if not seen:
        return
    address = _first_broker(k)
    if seen[0] == tls_sentence("not_tls", k):
        # librdkafka guesses "a PLAINTEXT listener?" for any disconnect during the handshake,
        # a load balancer or proxy with no broker behind it too: only a Kafka answer in
        # plaintext makes it so. Anything else is an outage, waited out by the caller.
        if address is None or not _answers_plaintext_kafka(*address):
            return
    if seen[0] == tls_sentence("untrusted", k) and address is not None:
        # librdkafka says only "certificate verify failed"; Python's TLS says why (expired,
        # another host's, or really another CA's), from the same CA and host check.
        why = diagnose_certificate(*address, k.ssl_ca_location, check_hostname=k.ssl_endpoint_identification)
        if why in ("expired", "wrong_host"):
            raise SecurityError(tls_sentence(why, k))
    raise SecurityError(seen[0])


def _first_broker(k: KafkaSettings) -> tuple[str, int] | None:
    host, _, port = k.bootstrap_servers.split(",")[0].strip().rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _answers_plaintext_kafka(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether `host:port` answers a plaintext ApiVersions request (v0) as a Kafka broker does."""
    import struct

    correlation = 0x6F74  # any id: the answer must echo it
    client = b"ordertrack.probe"
    body = struct.pack(">hhih", 18, 0, correlation, len(client)) + client
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 8:
                chunk = s.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    size, echoed = struct.unpack(">ii", head)
    return echoed == correlation and 4 <= size < 1_000_000
