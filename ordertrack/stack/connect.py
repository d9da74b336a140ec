"""Kafka Connect (distributed mode, one worker) with the Debezium plugin, run from Maven Central jars.

Only started when asked (`stack up --connect`, or `ORDERTRACK_STACK_CONNECT=1`): a stack for the
timestamp poller alone does not pay for a JVM it never uses. Debezium
2.6.2's MySQL connector with `connector.adapter=mariadb` is the one measured to work on MariaDB
10.11 (docs/RUNTIME.md); 3.x is the connector for MySQL 8.x sources and cannot be tested here.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from ordertrack.log import get_logger
from ordertrack.resources import resource_path
from ordertrack.stack.kafka import JVM_FLAGS, KAFKA_VERSION
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import start_detached
from ordertrack.stack.service import PidTracked, ServiceStatus
from ordertrack.stack.tools import MAVEN_HINT, fetch_with_maven, require, require_java

log = get_logger(__name__)

DEBEZIUM_VERSION = "2.6.2.Final"
MYSQL_CONNECTOR_CLASS = "io.debezium.connector.mysql.MySqlConnector"
GROUP_ID = "ordertrack-connect"
CDC_PASSWORD_VAR = "CDC_MYSQL_PASSWORD"
"""The environment variable of the Connect worker holding the CDC account's password: connector
configurations name it (`${env:CDC_MYSQL_PASSWORD}`), so the password never sits in the
configuration Connect stores in its config topic."""


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

    def env(self) -> dict[str, str]:
        return {"CONNECT_URL": self.url, "CONNECT_SCHEMA_HISTORY_DIR": str(self.dir / "history")}

    # -- up ---------------------------------------------------------------------------------
    def up(self, env: dict[str, str]) -> ServiceStatus:
        """`env` is the stack's `.env`: the broker's address and the CDC account's password,
        which the worker reads from its environment when it resolves a connector's config."""
        if self.running_pid() is None:
            fetch_with_maven(resource_path("connect-pom.xml"), self.lib, f"Kafka Connect {KAFKA_VERSION}")
            fetch_with_maven(resource_path("debezium-pom.xml"), self.plugins / "debezium-connector-mysql",
                             f"Debezium {DEBEZIUM_VERSION}", marker=self.plugins / ".complete")
            # In a secured stack the worker stays on the plaintext listener (the local admin's,
            # a super user): SASL_SSL for Connect is not built yet (README, "The local stack").
            self._configure(env.get("KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS") or env["KAFKA_BOOTSTRAP_SERVERS"])
            start_detached(
                [require_java(17), *JVM_FLAGS,
                 f"-Dlog4j2.configurationFile={resource_path('kafka-log4j2.yaml')}",
                 f"-Dkafka.logs.dir={self.dir / 'logs'}",
                 "-cp", f"{self.lib}/*",
                 "org.apache.kafka.connect.cli.ConnectDistributed", str(self.props)],
                log_file=self.dir / "logs" / "stdout.log",
                pid_file=self.pid_file,
                # Only what the JVM needs and the one secret: the env provider resolves nothing else.
                env={**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "JAVA_HOME", "TZ")},
                     CDC_PASSWORD_VAR: env.get(CDC_PASSWORD_VAR, "")},
            )
            log.info("stack.connect.started", address=self.url)
        self.wait_healthy(self._ready, timeout=120, interval=1.0, log_file=self.dir / "logs" / "server.log",
                          not_ready=f"Kafka Connect did not list the Debezium plugin on {self.url}")
        return self.status()

    def _configure(self, bootstrap: str) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.dir / "history").mkdir(parents=True, exist_ok=True)
        self.props.write_text("\n".join([
            "# Written by `ordertrack stack up`: one Kafka Connect worker in distributed mode.",
            f"bootstrap.servers={bootstrap}",
            f"group.id={GROUP_ID}",
            f"listeners=http://127.0.0.1:{self.layout.connect_port}",
            "rest.advertised.host.name=127.0.0.1",
            f"rest.advertised.port={self.layout.connect_port}",
            "config.storage.topic=ordertrack.connect.configs",
            "offset.storage.topic=ordertrack.connect.offsets",
            "status.storage.topic=ordertrack.connect.status",
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
            f"config.providers.env.param.allowlist.pattern=^{CDC_PASSWORD_VAR}$",
            "config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider",
            "offset.flush.interval.ms=5000",
            "",
        ]))

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
