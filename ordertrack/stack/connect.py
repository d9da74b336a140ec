"""Kafka Connect (distributed mode, one worker) with the Debezium plugin, run from Maven Central jars.

Only started when asked (`stack up --connect`, or `ORDERTRACK_STACK_CONNECT=1`): a stack for the
timestamp poller alone does not pay for a JVM it never uses. Debezium
2.6.2's MySQL connector with `connector.adapter=mariadb` is the one measured to work on MariaDB
10.11 (docs/RUNTIME.md); 3.x is the connector for MySQL 8.x sources and cannot be tested here.

In a secured stack (`stack up --secure`) the worker is a client like any other: it connects over
the SASL_SSL listener as its own SCRAM user `ordertrack-connect` (password made once, kept in
`.env` as CONNECT_KAFKA_SASL_PASSWORD) with the stack's CA, for its own clients and, through the
`producer.`, `consumer.` and `admin.` prefixes, for its tasks'. The password is not in
`worker.properties`: the worker's `sasl.jaas.config` names `${env:CONNECT_KAFKA_SASL_PASSWORD}`,
resolved by the env config provider from the worker's environment. `up` sets the SCRAM
credential and applies exactly `connect_acls` for the default pipeline config over the local
admin's listener. For Debezium's TLS to MariaDB it writes a PKCS#12 trust store holding the
stack's CA (`connect/mysql-truststore.p12`, its password CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD,
resolved the same way): the binlog reader takes trust from a key store only.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from ordertrack.errors import OrdertrackError
from ordertrack.log import get_logger
from ordertrack.resources import resource_path
from ordertrack.stack.envfile import read_env
from ordertrack.stack.kafka import JVM_FLAGS, KAFKA_VERSION, KafkaService
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import start_detached
from ordertrack.stack.service import PidTracked, ServiceStatus
from ordertrack.stack.tools import MAVEN_HINT, fetch_with_maven, require, require_java

log = get_logger(__name__)

DEBEZIUM_VERSION = "2.6.2.Final"
MYSQL_CONNECTOR_CLASS = "io.debezium.connector.mysql.MySqlConnector"
GROUP_ID = "ordertrack-connect"
STORAGE_PREFIX = "ordertrack.connect"
"""The worker's config, offset and status topics are `<STORAGE_PREFIX>.configs|offsets|status`."""
CDC_PASSWORD_VAR = "CDC_MYSQL_PASSWORD"
"""The environment variable of the Connect worker holding the CDC account's password: connector
configurations name it (`${env:CDC_MYSQL_PASSWORD}`), so the password never sits in the
configuration Connect stores in its config topic."""
CONNECT_USER = "ordertrack-connect"
"""The worker's SCRAM user in a secured stack: principal `User:ordertrack-connect`."""
SASL_PASSWORD_VAR = "CONNECT_KAFKA_SASL_PASSWORD"
TRUSTSTORE_PASSWORD_VAR = "CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD"
WORKER_SECRETS = (CDC_PASSWORD_VAR, SASL_PASSWORD_VAR, TRUSTSTORE_PASSWORD_VAR)
"""The only variables the worker's env config provider may resolve (and the only secrets its
environment holds)."""


class ConnectService(PidTracked):
    name = "connect"
    grace_seconds = 40.0

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.dir = layout.connect_dir
        self.lib = layout.cache / f"connect-{KAFKA_VERSION}" / "lib"
        self.plugins = layout.cache / f"debezium-{DEBEZIUM_VERSION}"
        self.pid_file = self.dir / "connect.pid"
        self.props = self.dir / "worker.properties"
        self.marker = str(self.dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.layout.connect_port}"

    def check_tools(self) -> None:
        require_java(17)
        if not ((self.lib / ".complete").exists() and (self.plugins / ".complete").exists()):
            require("mvn", MAVEN_HINT)

    @property
    def mysql_truststore(self) -> Path:
        return self.dir / "mysql-truststore.p12"

    def env(self) -> dict[str, str]:
        out = {"CONNECT_URL": self.url, "CONNECT_SCHEMA_HISTORY_DIR": str(self.dir / "history")}
        if self.layout.secure:
            old = read_env(self.layout.env_file)
            out.update({
                # Made once and kept; `up` (re)sets the broker's credential.
                SASL_PASSWORD_VAR: old.get(SASL_PASSWORD_VAR) or secrets.token_urlsafe(18),
                # Where the connector finds the source's CA for the binlog connection (a path on
                # the worker's host), and the store's password, which only the worker reads.
                "CONNECT_MYSQL_SSL_TRUSTSTORE": str(self.mysql_truststore),
                TRUSTSTORE_PASSWORD_VAR: old.get(TRUSTSTORE_PASSWORD_VAR) or secrets.token_urlsafe(18),
            })
        return out

    # -- up ---------------------------------------------------------------------------------
    def up(self, env: dict[str, str]) -> ServiceStatus:
        """`env` is the stack's `.env`: the broker's address and the CDC account's password,
        which the worker reads from its environment when it resolves a connector's config."""
        if self.running_pid() is not None and self._current_properties() != self._properties(env):
            # e.g. a plaintext worker in a stack made secure: the worker reads its properties at start only.
            log.info("stack.connect.restart", reason="configuration changed")
            self.down()
        if self.layout.secure:
            self._secure_accounts(env)
        if self.running_pid() is None:
            fetch_with_maven(resource_path("connect-pom.xml"), self.lib, f"Kafka Connect {KAFKA_VERSION}")
            fetch_with_maven(resource_path("debezium-pom.xml"), self.plugins / "debezium-connector-mysql",
                             f"Debezium {DEBEZIUM_VERSION}", marker=self.plugins / ".complete")
            if self.layout.secure:
                self._write_truststore(env[TRUSTSTORE_PASSWORD_VAR])
            self._configure(env)
            start_detached(
                [require_java(17), *JVM_FLAGS,
                 f"-Dlog4j2.configurationFile={resource_path('kafka-log4j2.yaml')}",
                 f"-Dkafka.logs.dir={self.dir / 'logs'}",
                 "-cp", f"{self.lib}/*",
                 "org.apache.kafka.connect.cli.ConnectDistributed", str(self.props)],
                log_file=self.dir / "logs" / "stdout.log",
                pid_file=self.pid_file,
                # Only what the JVM needs and the worker's secrets: the env provider resolves nothing else.
                env={**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "JAVA_HOME", "TZ")},
                     **{k: env.get(k, "") for k in WORKER_SECRETS}},
            )
            log.info("stack.connect.started", address=self.url)
        self.wait_healthy(self._ready, timeout=120, interval=1.0, log_file=self.dir / "logs" / "server.log",
                          not_ready=f"Kafka Connect did not list the Debezium plugin on {self.url}")
        return self.status()

    def _secure_accounts(self, env: dict[str, str]) -> None:
        """The worker's SCRAM user and exactly the ACLs `connect_acls` lists for the default
        pipeline config, over the local admin's listener."""
        from ordertrack.config import load_pipeline_config
        from ordertrack.kafka.acls import connect_acls

        kafka = KafkaService(self.layout)
        kafka.set_scram_password(CONNECT_USER, env[SASL_PASSWORD_VAR])
        config = load_pipeline_config(resource_path("pipeline.yaml"))
        kafka.apply_acls(connect_acls(config, f"User:{CONNECT_USER}", GROUP_ID, STORAGE_PREFIX))

    def _write_truststore(self, password: str) -> None:
        """A PKCS#12 trust store holding the stack's CA, for Debezium's binlog connection (made
        again on every start, so it always holds the current CA under the current password)."""
        from ordertrack.stack.tls import StackTLS

        keytool = str(Path(require_java(17)).resolve().with_name("keytool"))
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.mysql_truststore.with_name(self.mysql_truststore.name + ".tmp")
        tmp.unlink(missing_ok=True)
        out = subprocess.run(
            [keytool, "-importcert", "-noprompt", "-alias", "ordertrack-stack-ca", "-storetype", "PKCS12",
             "-file", str(StackTLS(self.layout.tls_dir).ca.cert_path), "-keystore", str(tmp),
             "-storepass:env", TRUSTSTORE_PASSWORD_VAR],
            capture_output=True, text=True, timeout=60, env={**os.environ, TRUSTSTORE_PASSWORD_VAR: password})
        if out.returncode != 0:
            raise OrdertrackError(f"keytool could not write the MariaDB trust store: {out.stderr.strip()[-300:]}")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.mysql_truststore)

    def _secure_properties(self) -> list[str]:
        """SASL_SSL as `ordertrack-connect` for the worker's own clients and, by prefix, its tasks'."""
        from ordertrack.stack.tls import StackTLS

        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{CONNECT_USER}" '
                f'password="${{env:{SASL_PASSWORD_VAR}}}";')
        common = ["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512", f"sasl.jaas.config={jaas}",
                  "ssl.truststore.type=PEM", f"ssl.truststore.location={StackTLS(self.layout.tls_dir).ca.cert_path}"]
        return ["# Secured stack: SASL_SSL (SCRAM) as User:" + CONNECT_USER + "; the password is resolved from",
                "# the worker's environment by the env config provider, never written here.",
                *common, *(f"{prefix}.{line}" for prefix in ("producer", "consumer", "admin") for line in common)]

    def _current_properties(self) -> str:
        try:
            return self.props.read_text()
        except OSError:
            return ""

    def _configure(self, env: dict[str, str]) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "history").mkdir(parents=True, exist_ok=True)
        self.props.write_text(self._properties(env))

    def _properties(self, env: dict[str, str]) -> str:
        """The worker's properties: no secret in them, only references the worker resolves."""
        return "\n".join([
            "# Written by `ordertrack stack up`: one Kafka Connect worker in distributed mode.",
            f"bootstrap.servers={env['KAFKA_BOOTSTRAP_SERVERS']}",
            f"group.id={GROUP_ID}",
            f"listeners=http://127.0.0.1:{self.layout.connect_port}",
            "rest.advertised.host.name=127.0.0.1",
            f"rest.advertised.port={self.layout.connect_port}",
            f"config.storage.topic={STORAGE_PREFIX}.configs",
            f"offset.storage.topic={STORAGE_PREFIX}.offsets",
            f"status.storage.topic={STORAGE_PREFIX}.status",
            "config.storage.replication.factor=1",
            "offset.storage.replication.factor=1",
            "status.storage.replication.factor=1",
            # A change event and the connector's binlog position commit in one Kafka transaction:
            # without it one SIGKILL of the worker repeated 136 events (docs/RUNTIME.md).
            "exactly.once.source.support=enabled",
            "key.converter=org.apache.kafka.connect.json.JsonConverter",
            "value.converter=org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable=false",
            "value.converter.schemas.enable=false",
            f"plugin.path={self.plugins}",
            # 5-6 s to a listening worker, against 11-22 s for the default class-path scan.
            "plugin.discovery=service_load",
            # Connector configs name secrets as ${env:VAR}; the worker resolves them at start-up.
            "config.providers=env,file",
            "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            f"config.providers.env.param.allowlist.pattern=^({'|'.join(WORKER_SECRETS)})$",
            "config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider",
            "offset.flush.interval.ms=5000",
            *(self._secure_properties() if self.layout.secure else []),
            "",
        ])

    def _get(self, path: str) -> object | None:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=3) as r:
                return json.loads(r.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def _ready(self) -> bool:
        plugins = self._get("/connector-plugins")
        return isinstance(plugins, list) and any(p.get("class") == MYSQL_CONNECTOR_CLASS for p in plugins)

    # -- status -------------------------------------------------------------------------------
    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus(self.name, self.url, "stopped", None)
        root = self._get("/")
        if not isinstance(root, dict) or not self._ready():
            return ServiceStatus(self.name, self.url, "unhealthy", pid)
        return ServiceStatus(self.name, self.url, "running", pid,
                             f"Kafka Connect {root.get('version')}, Debezium {DEBEZIUM_VERSION}")
