"""`stack up --secure`: the certificates, and the secured Kafka and MariaDB, on a second stack."""

from __future__ import annotations

import datetime as dt
import ssl
import stat

import pymysql
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ordertrack.config import load_pipeline_config
from ordertrack.kafka.acls import pipeline_acls
from ordertrack.resources import resource_path
from ordertrack.stack.tls import ensure_stack_tls, issue_cert, make_ca
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration


def _verify(cert: x509.Certificate, ca: x509.Certificate) -> None:
    """The signature of `cert` checks out against the CA's key (raises otherwise)."""
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)


# -- certificates (no service) ------------------------------------------------------------------
def test_stack_certificates_chain_to_the_ca(tmp_path):
    tls = ensure_stack_tls(tmp_path / "tls")
    ca, server, client = tls.ca.cert, tls.server.cert, tls.client.cert
    _verify(server, ca)
    _verify(client, ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ordertrack"
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in list(eku)
    for key in (tls.ca.key_path, tls.server.key_path, tls.client.key_path, tls.kafka_keystore):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    # Python's own TLS stack accepts the server certificate for 127.0.0.1 with this CA.
    ctx = ssl.create_default_context(cafile=str(tls.ca.cert_path))
    ctx.load_cert_chain(str(tls.server.cert_path), str(tls.server.key_path))


def test_certificates_are_kept_across_calls(tmp_path):
    first = ensure_stack_tls(tmp_path / "tls")
    before = {p.name: p.read_bytes() for p in first.dir.iterdir()}
    again = ensure_stack_tls(tmp_path / "tls")
    assert {p.name: p.read_bytes() for p in again.dir.iterdir()} == before


def test_on_demand_certificates_for_failure_tests(tmp_path):
    other = make_ca(tmp_path, "other-ca", cn="another CA")
    now = dt.datetime.now(dt.timezone.utc)
    expired = issue_cert(other, tmp_path, "expired", cn="localhost", sans=["127.0.0.1"],
                         not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1))
    wrong_host = issue_cert(other, tmp_path, "wrong-host", cn="elsewhere", sans=["db.example.com"])
    assert expired.cert.not_valid_after_utc < now
    _verify(wrong_host.cert, other.cert)
    san = wrong_host.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["db.example.com"]


# -- the secured stack --------------------------------------------------------------------------
def _sasl_conf(env: dict[str, str], **over: str) -> dict[str, str]:
    conf = {
        "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": env["KAFKA_SECURITY_PROTOCOL"],
        "sasl.mechanism": env["KAFKA_SASL_MECHANISM"],
        "sasl.username": env["KAFKA_SASL_USERNAME"],
        "sasl.password": env["KAFKA_SASL_PASSWORD"],
        "ssl.ca.location": env["KAFKA_SSL_CA_LOCATION"],
    }
    conf.update(over)
    return conf


def _errors() -> tuple[list[str], object]:
    seen: list[str] = []

    def error_cb(err: object) -> None:
        seen.append(str(err))

    return seen, error_cb


def test_env_carries_the_secured_settings(secure_stack):
    env, layout = secure_stack.env, secure_stack.layout
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{layout.kafka_secure_port}"
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_USERNAME"] == "ordertrack"
    assert len(env["KAFKA_SASL_PASSWORD"]) >= 20
    assert env["KAFKA_SSL_CA_LOCATION"] == str(layout.tls_dir / "ca.pem")
    assert env["KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{layout.kafka_port}"
    assert env["KAFKA_MTLS_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{layout.kafka_mtls_port}"
    assert "KAFKA_SSL_CERTIFICATE_LOCATION" not in env  # would make every client present it
    assert env["MYSQL_SSL_MODE"] == "verify_identity"
    assert env["MYSQL_SSL_CA"] == str(layout.tls_dir / "ca.pem")
    assert stat.S_IMODE(layout.env_file.stat().st_mode) == 0o600


def test_sasl_ssl_client_lists_topics(secure_stack):
    md = AdminClient(_sasl_conf(secure_stack.env)).list_topics(timeout=20)
    assert len(md.brokers) == 1


def test_wrong_sasl_password_is_refused(secure_stack):
    seen, error_cb = _errors()
    admin = AdminClient({**_sasl_conf(secure_stack.env, **{"sasl.password": "not-the-password"}),
                         "error_cb": error_cb})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=8)
    wait_until("an authentication error from the broker",
               lambda: admin.poll(0.2) is not None and any("Authentication failed" in e for e in seen), timeout=15,
               context=lambda: "\n".join(seen))


def test_sasl_ssl_with_another_ca_is_refused(secure_stack, tmp_path):
    other = make_ca(tmp_path, "other-ca", cn="another CA")
    seen, error_cb = _errors()
    admin = AdminClient({**_sasl_conf(secure_stack.env, **{"ssl.ca.location": str(other.cert_path)}),
                         "error_cb": error_cb})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=8)
    wait_until("a certificate verification error",
               lambda: admin.poll(0.2) is not None and any("certificate verify failed" in e for e in seen),
               timeout=15, context=lambda: "\n".join(seen))


def test_mtls_listener_requires_a_client_certificate(secure_stack):
    env = secure_stack.env
    base = {"bootstrap.servers": env["KAFKA_MTLS_BOOTSTRAP_SERVERS"], "security.protocol": "SSL",
            "ssl.ca.location": env["KAFKA_SSL_CA_LOCATION"]}
    with pytest.raises(KafkaException):
        AdminClient(base).list_topics(timeout=8)
    md = AdminClient({**base, "ssl.certificate.location": env["KAFKA_CLIENT_CERTIFICATE"],
                      "ssl.key.location": env["KAFKA_CLIENT_KEY"]}).list_topics(timeout=20)
    assert len(md.brokers) == 1


def test_pipeline_acls_are_applied(secure_stack):
    admin = AdminClient({"bootstrap.servers": secure_stack.env["KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"]})
    flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:ordertrack", None,
                           AclOperation.ANY, AclPermissionType.ANY)
    present = admin.describe_acls(flt, request_timeout=20).result(timeout=30)
    wanted = pipeline_acls(load_pipeline_config(resource_path("pipeline.yaml")), "User:ordertrack")
    assert set(present) == set(wanted)


def _mysql(env: dict[str, str], user_var: str, password_var: str, **ssl_args: object) -> pymysql.Connection:
    return pymysql.connect(host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]), user=env[user_var],
                           password=env[password_var], database=env["MYSQL_DATABASE"], connect_timeout=5,
                           **ssl_args)  # type: ignore[arg-type]


@pytest.mark.parametrize("user_var,password_var", [("MYSQL_USER", "MYSQL_PASSWORD"),
                                                   ("WORKLOAD_MYSQL_USER", "WORKLOAD_MYSQL_PASSWORD")])
def test_mariadb_requires_tls_for_the_pipeline_and_workload_users(secure_stack, user_var, password_var):
    env = secure_stack.env
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _mysql(env, user_var, password_var, ssl_disabled=True)  # pymysql 2 would otherwise try TLS unasked
    assert refused.value.args[0] == 1045
    # With the CA, verifying the server's name (127.0.0.1 is in its certificate): accepted, over TLS.
    with _mysql(env, user_var, password_var,
                ssl={"ca": env["MYSQL_SSL_CA"], "check_hostname": True}) as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        row = cur.fetchone()
        assert row is not None and row[1].startswith("TLS")


def test_mariadb_refuses_a_server_check_against_another_ca(secure_stack, tmp_path):
    other = make_ca(tmp_path, "other-ca", cn="another CA")
    with pytest.raises(pymysql.err.OperationalError):
        _mysql(secure_stack.env, "MYSQL_USER", "MYSQL_PASSWORD",
               ssl={"ca": str(other.cert_path), "check_hostname": True})


def test_up_again_is_idempotent(secure_stack):
    before_env = dict(secure_stack.env)
    before_pids = {s.name: s.pid for s in secure_stack.stack.status()}
    before_certs = {p.name: p.read_bytes() for p in secure_stack.tls.dir.iterdir()}
    secure_stack.up()
    assert secure_stack.env == before_env  # passwords kept
    assert {s.name: s.pid for s in secure_stack.stack.status()} == before_pids  # nothing restarted
    assert {p.name: p.read_bytes() for p in secure_stack.tls.dir.iterdir()} == before_certs
    assert len(AdminClient(_sasl_conf(secure_stack.env)).list_topics(timeout=20).brokers) == 1
