"""The pipeline against secured services (`stack up --secure`): Kafka over SASL_SSL with SCRAM and
only the pipeline's ACLs, MySQL over verified TLS; and every way a secured connection can be
wrong fails closed with one sentence naming the setting, exit 4, and no secret in any output."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from ordertrack.kafka.acls import pipeline_acls, pipeline_grants
from ordertrack.kafka.admin import KafkaAdmin
from ordertrack.settings import KafkaSettings
from ordertrack.stack.tls import make_ca
from tests.consumers.test_worker import stop
from tests.support.pipeline_env import ORDERTRACK, Env, _env_factory
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

SECRET_VARS = ("KAFKA_SASL_PASSWORD", "MYSQL_PASSWORD", "WORKLOAD_MYSQL_PASSWORD", "CDC_MYSQL_PASSWORD",
               "AWS_SECRET_ACCESS_KEY")


class Secured:
    """One test's pipeline on the secured stack, run as the pipeline's own (ACL-limited) principal."""

    def __init__(self, stack, env: Env, tmp_path: Path) -> None:
        self.stack, self.env, self.tmp = stack, env, tmp_path
        self.outputs: list[str] = []
        self.extra_acls: list = []
        """Grants a test made for principals of its own, removed afterwards."""

    @property
    def vars(self) -> dict[str, str]:
        # The secured stack's `.env` is read by every command: its state folder is the one given.
        return {"ORDERTRACK_STATE_DIR": str(self.stack.state_dir), "ORDERTRACK_PROGRESS": "off"}

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        r = self.env.cli(*args, timeout=240, **self.vars, **env)
        self.outputs += [r.stdout, r.stderr]
        return r

    def explicit_env(self, drop: tuple[str, ...] = (), **env: str) -> tuple[dict[str, str], Path]:
        """Every setting given explicitly (no `.env` read): the secured stack's settings minus
        `drop`, plus `env`; and a working folder without a `.env`."""
        given = {k: v for k, v in self.stack.env.items() if k not in drop and not k.startswith("#")}
        bare = self.tmp / "no-env-here"
        bare.mkdir(exist_ok=True)
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("MYSQL_", "KAFKA_", "WAREHOUSE_", "WORKLOAD_", "AWS_"))}
        return {**clean, **given, **self.env.env_vars, "ORDERTRACK_STATE_DIR": str(bare),
                "ORDERTRACK_PROGRESS": "off", **env}, bare

    def explicit(self, *args: str, drop: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
        variables, bare = self.explicit_env(drop, **env)
        r = subprocess.run([ORDERTRACK, "--config", str(self.env.config_path), *args],
                           capture_output=True, text=True, timeout=120, cwd=bare, env=variables)
        self.outputs += [r.stdout, r.stderr]
        return r

    def worker_lands_everything(self, what: str, env: dict[str, str], cwd: Path | None = None,
                                *options: str) -> str:
        """Run the faust worker (`consume`) until every window has landed, stop it; its log."""
        log = self.tmp / f"worker-{len(self.outputs)}.log"
        with open(log, "w") as out:
            worker = subprocess.Popen([ORDERTRACK, "--config", str(self.env.config_path), *options, "consume"],
                                      stdout=out, stderr=out, cwd=cwd, env=env)
        try:
            wait_until(f"the faust worker to land every window over {what}", self.landed_everything, timeout=180,
                       context=lambda: log.read_text()[-3000:])
            assert worker.poll() is None, log.read_text()[-3000:]
        finally:
            stop(worker)
            self.outputs.append(log.read_text())
        return log.read_text()

    def landed_everything(self) -> bool:
        r = self.cli("lag", "--json")
        # Each table's window is one transaction: its commit marker stays "unlanded".
        return r.returncode == 0 and all(p["lag_messages"] <= 1 for p in json.loads(r.stdout))

    def secrets(self) -> list[str]:
        found = [self.stack.env[v] for v in SECRET_VARS if self.stack.env.get(v)]
        key_lines = self.stack.tls.client.key_path.read_text().splitlines()
        return found + [line for line in key_lines if len(line) > 20 and "PRIVATE KEY" not in line]


@pytest.fixture(scope="module")
def secure_mariadb_admin(secure_stack) -> Iterator[pymysql.connections.Connection]:
    conn = secure_stack.stack.mariadb.admin_connect(database="kuaisong")
    yield conn
    conn.close()


@pytest.fixture
def secured(secure_stack, secure_mariadb_admin, tmp_path) -> Iterator[Secured]:
    plain = secure_stack.env["KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"]
    with _env_factory(secure_mariadb_admin, plain, tmp_path) as make:
        env = make()
        # As an administrator would: the topics exist (made by the factory over the local admin
        # listener), and the pipeline's principal gets exactly what `topics acls` lists.
        r = env.cli("topics", "acls", "--apply", "--json", KAFKA_BOOTSTRAP_SERVERS=plain,
                    ORDERTRACK_STATE_DIR=str(tmp_path))
        assert r.returncode == 0, r.stderr
        secured = Secured(secure_stack, env, tmp_path)
        try:
            yield secured
        finally:  # the stack's own grants stay exactly the default pipeline's (test_secure_stack)
            admin = KafkaAdmin(KafkaSettings(bootstrap_servers=plain))
            admin.delete_acls(pipeline_acls(env.config, "User:ordertrack") + secured.extra_acls)


def one_sentence(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 4, (r.returncode, r.stdout[-1500:], r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_the_pipeline_runs_over_sasl_ssl_and_mysql_tls_with_nothing_but_its_acls(secured, secure_mariadb_admin):
    env = secured.env
    assert secured.stack.env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert secured.stack.env["KAFKA_BOOTSTRAP_SERVERS"].endswith(f":{secured.stack.layout.kafka_secure_port}")
    assert secured.stack.env["MYSQL_SSL_MODE"] == "verify_identity"
    # The workload account requires TLS too: the generator connects with it.
    with secure_mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO 'kuaisong_app'@'%'")
    r = secured.cli("generate", "--history-days", "0.05", "--orders-per-minute", "20", "--scan-interval-minutes",
                    "10", "--seed", "15", MYSQL_DATABASE=env.db)
    assert r.returncode == 0, r.stderr[-3000:]

    report = secured.tmp / "produce.json"
    r = secured.cli("produce", "--json-output", str(report))
    assert r.returncode == 0, r.stderr[-3000:]
    published = {table: t["rows"] for table, t in json.loads(report.read_text())["tables"].items()}
    assert all(n > 0 for n in published.values()), published

    secured.worker_lands_everything("SASL_SSL", {**os.environ, **env.env_vars, **secured.vars}, None,
                                    "--log-level", "DEBUG")
    raw = env.engine()
    for table, n in published.items():
        spec = env.spec(table)
        assert raw.query(f'SELECT COUNT(*) FROM "{spec.raw_schema}"."{spec.raw_table}"')[0][0] == n

    r = secured.cli("run-once", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    for table in published:
        r = secured.cli("dq", "reconcile", "--table", table, "--json")
        assert r.returncode == 0, (table, r.stdout[-2000:], r.stderr[-2000:])
    r = secured.cli("dq", "run", "--json")  # the extraction check reads the dead letters over SASL_SSL
    assert r.returncode in (0, 1), (r.stdout[-2000:], r.stderr[-3000:])
    r = secured.cli("status", "--json")
    assert r.returncode in (0, 1), r.stderr[-3000:]  # every service reachable (4 would say otherwise)

    outputs = "\n".join(secured.outputs)
    assert "worker" in outputs or "landing" in outputs  # the worker's debug log is among what is scanned
    for secret in secured.secrets():
        assert secret not in outputs


def test_a_certificate_the_ca_does_not_verify_fails_closed(secured):
    other = make_ca(secured.tmp, "other-ca", cn="not the broker's CA")
    line = one_sentence(secured.cli("topics", "list", KAFKA_SSL_CA_LOCATION=str(other.cert_path)),
                        "KAFKA_SSL_CA_LOCATION")
    assert "certificate" in line
    one_sentence(secured.cli("source", "counts", MYSQL_SSL_CA=str(other.cert_path)), "MYSQL_SSL_CA")


def test_a_wrong_sasl_password_fails_closed_for_the_producer_and_the_worker(secured):
    for args in (("produce",), ("consume",)):
        one_sentence(secured.cli(*args, KAFKA_SASL_PASSWORD="not-the-password"),
                     "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
    r = secured.cli("config", "check", "--json", KAFKA_SASL_PASSWORD="not-the-password")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    found = [f for f in json.loads(r.stdout)["problems"] if f["check"] == "kafka.security"]
    assert found and "KAFKA_SASL_PASSWORD" in found[0]["message"], r.stdout[-2000:]
    assert all("not-the-password" not in o for o in secured.outputs)


def test_a_plaintext_listener_is_refused_when_tls_was_asked_for(secured):
    plain = secured.stack.env["KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"]
    started = time.monotonic()
    line = one_sentence(secured.cli("topics", "list", KAFKA_BOOTSTRAP_SERVERS=plain), "KAFKA_SECURITY_PROTOCOL")
    assert "TLS" in line and time.monotonic() - started < 60


def test_a_source_without_tls_is_refused_when_tls_was_asked_for(secured, settings):
    # The main stack's MariaDB has no TLS at all: a server that cannot downgrade us.
    r = secured.cli("source", "counts", MYSQL_HOST="127.0.0.1", MYSQL_PORT=str(settings.mysql.port),
                    MYSQL_SSL_MODE="required", MYSQL_SSL_CA="")
    one_sentence(r, "does not offer TLS", "MYSQL_SSL_MODE")


def test_an_account_that_requires_tls_is_refused_without_it(secured):
    r = secured.cli("source", "counts", MYSQL_SSL_MODE="disabled", MYSQL_SSL_CA="")
    one_sentence(r, "MYSQL_SSL_MODE")


def test_mutual_tls_needs_the_client_certificate(secured):
    mtls = {"KAFKA_BOOTSTRAP_SERVERS": secured.stack.env["KAFKA_MTLS_BOOTSTRAP_SERVERS"],
            "KAFKA_SECURITY_PROTOCOL": "SSL"}
    sasl = ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD")
    one_sentence(secured.explicit("topics", "list", drop=sasl, **mtls), "KAFKA_SSL_CERTIFICATE_LOCATION")
    r = secured.explicit("topics", "list", "--json", drop=sasl, **mtls,
                         KAFKA_SSL_CERTIFICATE_LOCATION=secured.stack.env["KAFKA_CLIENT_CERTIFICATE"],
                         KAFKA_SSL_KEY_LOCATION=secured.stack.env["KAFKA_CLIENT_KEY"])
    assert r.returncode == 0, r.stderr[-3000:]
    # The certificate's name is the principal: it sees the pipeline's topics through its ACLs.
    assert all(t["exists"] for t in json.loads(r.stdout))


def test_the_worker_lands_over_mutual_tls_with_its_certificate_as_principal(secured, secure_mariadb_admin):
    """The faust worker (aiokafka) on the mTLS listener: the client certificate reaches its SSL
    context, and its name (CN=ordertrack) is the principal the pipeline's ACLs are granted to."""
    env = secured.env
    with secure_mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO 'kuaisong_app'@'%'")
    r = secured.cli("generate", "--history-days", "0.02", "--orders-per-minute", "10", "--seed", "3",
                    MYSQL_DATABASE=env.db)
    assert r.returncode == 0, r.stderr[-3000:]
    assert secured.cli("produce").returncode == 0
    assert not secured.landed_everything()
    variables, bare = secured.explicit_env(
        ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"),
        KAFKA_BOOTSTRAP_SERVERS=secured.stack.env["KAFKA_MTLS_BOOTSTRAP_SERVERS"], KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CERTIFICATE_LOCATION=secured.stack.env["KAFKA_CLIENT_CERTIFICATE"],
        KAFKA_SSL_KEY_LOCATION=secured.stack.env["KAFKA_CLIENT_KEY"])
    secured.worker_lands_everything("mutual TLS", variables, bare)


def test_a_principal_without_the_transactional_id_acl_is_refused(secured):
    plain = secured.stack.env["KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"]
    user, password = f"notx_{secured.env.db}", "notx-password-123"
    secured.stack.stack.kafka.set_scram_password(user, password)
    grants = [g for g in pipeline_grants(secured.env.config) if g.resource != "transactional-id"]
    secured.extra_acls = [g.binding(f"User:{user}") for g in grants]
    KafkaAdmin(KafkaSettings(bootstrap_servers=plain)).create_acls(secured.extra_acls)

    def refused() -> subprocess.CompletedProcess | None:
        r = secured.cli("produce", KAFKA_SASL_USERNAME=user, KAFKA_SASL_PASSWORD=password)
        # A fresh SCRAM credential takes a moment to reach the broker's authenticator.
        return None if "KAFKA_SASL_PASSWORD" in r.stderr else r

    r = wait_until("the new SCRAM user to log in", refused, timeout=60)
    line = one_sentence(r, "transactional id", "topics acls")
    assert user in line and password not in r.stderr + r.stdout
