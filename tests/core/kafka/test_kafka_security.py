"""The one set of Kafka security settings, as each client library receives it (pure logic)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from ordertrack.errors import ConfigError
from ordertrack.kafka.security import client_conf, faust_credentials, refusal, security_sentence
from ordertrack.settings import KafkaSettings, _load

SCRAM = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "ordertrack",
         "sasl_password": "s3cret-pw", "ssl_ca_location": "/etc/ca.pem"}


def settings(**kw: object) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers="b1:9094", **kw)


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert client_conf(settings()) == {"bootstrap.servers": "b1:9094", "security.protocol": "PLAINTEXT"}
    assert faust_credentials(settings()) is None


def test_sasl_ssl_reaches_librdkafka_with_hostname_verification_on() -> None:
    conf = client_conf(settings(**SCRAM))
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "ordertrack" and conf["sasl.password"] == "s3cret-pw"
    assert conf["ssl.ca.location"] == "/etc/ca.pem" and conf["ssl.endpoint.identification.algorithm"] == "https"


def test_faust_gets_sasl_ssl_never_its_plaintext_fallback(tmp_path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from ordertrack.stack.tls import make_ca

    ca = make_ca(tmp_path, "ca")
    creds = faust_credentials(settings(**{**SCRAM, "ssl_ca_location": str(ca.cert_path)}))
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["ssl_context"] is not None and auth["ssl_context"].check_hostname


@pytest.mark.parametrize(("env", "needle"), [
    ({"security_protocol": "SASL_SSL"}, "KAFKA_SASL_MECHANISM"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256"}, "KAFKA_SASL_PASSWORD"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p"},
     "in clear"),
    ({"sasl_mechanism": "PLAIN"}, "does not use SASL"),
    ({"ssl_ca_location": "/ca.pem"}, "does not use TLS"),
    ({"security_protocol": "SSL", "ssl_certificate_location": "/c.pem"}, "go together"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}, "KAFKA_SASL_OAUTHBEARER_PROVIDER"),
])
def test_inconsistent_security_settings_are_one_sentence(monkeypatch, env: dict, needle: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(f"KAFKA_{k.upper()}", v)
    with pytest.raises(ConfigError) as e:
        _load(KafkaSettings, ())
    assert needle in str(e.value) and str(e.value).endswith(".")


def test_secrets_stay_out_of_the_settings_repr() -> None:
    s = settings(**SCRAM, ssl_key_password="key-pw")
    assert "s3cret-pw" not in repr(s) and "key-pw" not in repr(s)


def test_msk_iam_tokens_are_signed_locally_for_both_clients(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    k = settings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
                 sasl_oauthbearer_provider="aws_msk_iam", sasl_oauthbearer_region="eu-west-1")
    conf = client_conf(k)
    token, expiry = conf["oauth_cb"]("")
    assert token and expiry > 0 and "secret-example" not in token
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    auth = credentials_to_aiokafka_auth(faust_credentials(k))
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "OAUTHBEARER"


@pytest.mark.parametrize(("code", "text", "needle"), [
    (KafkaError._SSL, "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: "
                      "broker certificate could not be verified, verify that ssl.ca.location is correctly configured",
     "KAFKA_SSL_CA_LOCATION"),
    (KafkaError._SSL, "SSL handshake failed: ssl/record/ssl3_record.c:354: error:0A00010B:SSL routines::wrong version number",
     "plaintext listener"),
    (KafkaError._SSL, "SSL handshake failed: certificate verify failed: certificate has expired", "expired"),
    # Kafka 4.1's own words, as librdkafka 2.x reports them (measured on the secured stack):
    (KafkaError._TRANSPORT, "sasl_ssl://127.0.0.1:10492/bootstrap: SSL handshake failed: Disconnected: SSL connection "
                            "closed by peer: connecting to a PLAINTEXT broker listener? (after 5ms in state SSL_HANDSHAKE)",
     "KAFKA_SECURITY_PROTOCOL"),
    (KafkaError._TRANSPORT, "ssl://127.0.0.1:10495/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls "
                            "alert bad certificate: SSL alert number 42 (after 1ms in state APIVERSION_QUERY)",
     "KAFKA_SSL_CERTIFICATE_LOCATION"),
    (KafkaError._AUTHENTICATION, "SASL authentication error: Authentication failed during authentication due to "
                                 "invalid credentials with SASL mechanism SCRAM-SHA-512", "KAFKA_SASL_PASSWORD"),
])
def test_handshake_failures_name_the_setting_to_fix(code: int, text: str, needle: str) -> None:
    sentence = security_sentence(KafkaError(code, text), settings(**SCRAM))
    assert sentence is not None and needle in sentence and "s3cret" not in sentence


@pytest.mark.parametrize("text", [
    "Connection refused",
    "sasl_ssl://127.0.0.1:9094/bootstrap: Connect to ipv4#127.0.0.1:9094 failed: Connection refused (after 0ms in state CONNECT)",
    "ssl://b1:9094/1: Disconnected (after 12ms in state UP)",
    "sasl_ssl://b1:9094/1: Timed out 1 in-flight, 0 retry-queued, 0 out-queue, 0 partially-sent requests",
])
def test_a_broker_away_is_not_a_security_failure(text: str) -> None:
    """An outage of a secured cluster is waited out like any other: its broker names say "ssl"."""
    for code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT):
        assert security_sentence(KafkaError(code, text), settings(**SCRAM)) is None


def test_a_missing_acl_names_the_principal_and_the_resource() -> None:
    err = refusal(KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED), settings(**SCRAM), "p.producer.t")
    assert err is not None and "'ordertrack'" in str(err) and "p.producer.t" in str(err) and "topics acls" in str(err)


def test_the_faust_guard_refuses_a_protocol_faust_would_pick_on_its_own(monkeypatch) -> None:
    """faust turns SASL credentials without an SSL context into SASL_PLAINTEXT: should a context
    ever be missing, the worker refuses to start rather than send the credentials in clear."""
    from ordertrack.errors import SecurityError
    from ordertrack.kafka import security

    monkeypatch.setattr(security, "ssl_context", lambda k: None)
    with pytest.raises(SecurityError) as e:
        faust_credentials(settings(**SCRAM))
    assert "SASL_PLAINTEXT" in str(e.value) and "s3cret" not in str(e.value)
