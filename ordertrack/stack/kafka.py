"""Apache Kafka 4 (KRaft, one combined broker+controller node) run from Maven Central jars."""

from __future__ import annotations

import base64
import subprocess
import uuid

from ordertrack.errors import OrdertrackError
from ordertrack.log import get_logger
from ordertrack.resources import resource_path
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import start_detached
from ordertrack.stack.service import PidTracked, ServiceState, ServiceStatus
from ordertrack.stack.tools import MAVEN_HINT, fetch_with_maven, require, require_java

log = get_logger(__name__)

KAFKA_VERSION = "4.1.1"

# The release scripts' flags, with a heap sized for a 2-core test machine.
JVM_FLAGS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


class KafkaService(PidTracked):
    name = "kafka"
    grace_seconds = 40.0

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.dir = layout.kafka_dir
        self.lib = layout.cache / f"kafka-{KAFKA_VERSION}" / "lib"
        self.pid_file = self.dir / "kafka.pid"
        self.props = self.dir / "server.properties"
        self.marker = str(self.dir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.layout.kafka_port}"

    def check_tools(self) -> None:
        require_java(17)
        if not (self.lib / ".complete").exists():
            require("mvn", MAVEN_HINT)

    def env(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}

    # -- up ---------------------------------------------------------------------------------
    def up(self) -> ServiceStatus:
        if self.running_pid() is None:
            self._fetch()
            self._configure()
            self._format()
            start_detached(
                self._java_argv("kafka.Kafka", str(self.props)),
                log_file=self.dir / "logs" / "stdout.log",
                pid_file=self.pid_file,
            )
            log.info("stack.kafka.started", address=self.bootstrap)
        self.wait_healthy(self._metadata_ok, timeout=90, interval=1.0, log_file=self.dir / "logs" / "server.log",
                          not_ready=f"Kafka did not answer a metadata request on {self.bootstrap}")
        return self.status()

    def _fetch(self) -> None:
        fetch_with_maven(resource_path("kafka-pom.xml"), self.lib, f"Kafka {KAFKA_VERSION}")

    def _configure(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        lp, cp = self.layout.kafka_port, self.layout.kafka_controller_port
        self.props.write_text(
            "\n".join(
                [
                    "# Written by `ordertrack stack up`: a single-node KRaft broker+controller.",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"listeners=PLAINTEXT://127.0.0.1:{lp},CONTROLLER://127.0.0.1:{cp}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{lp},CONTROLLER://127.0.0.1:{cp}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{cp}",
                    f"log.dirs={self.dir / 'data'}",
                    "num.partitions=1",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=10",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # Each cleaner thread takes this much heap; the default 128 MiB is too much for 512 MiB.
                    "log.cleaner.dedupe.buffer.size=16777216",
                    "",
                ]
            )
        )

    def _format(self) -> None:
        if (self.dir / "data" / "meta.properties").exists():
            return
        out = subprocess.run(
            self._java_argv(
                "kafka.tools.StorageTool", "format", "--standalone", "-g",
                "-t", _new_cluster_id(), "-c", str(self.props),
            ),
            capture_output=True, text=True, timeout=120,
        )
        if out.returncode != 0:
            raise OrdertrackError(f"Formatting Kafka storage failed: {out.stdout.strip()} {out.stderr.strip()}")

    def _java_argv(self, main_class: str, *args: str) -> list[str]:
        return [
            require_java(17),
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={resource_path('kafka-log4j2.yaml')}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp", f"{self.lib}/*",
            main_class, *args,
        ]

    def _metadata_ok(self) -> bool:
        from confluent_kafka.admin import AdminClient

        from ordertrack.kafka.clients import routed

        try:
            md = AdminClient(routed({"bootstrap.servers": self.bootstrap})).list_topics(timeout=3)
        except Exception:  # any client error means "not ready yet"
            return False
        return len(md.brokers) > 0

    # -- down / status ------------------------------------------------------------------------
    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus(self.name, self.bootstrap, "stopped", None)
        state: ServiceState = "running" if self._metadata_ok() else "unhealthy"
        return ServiceStatus(self.name, self.bootstrap, state, pid, f"Kafka {KAFKA_VERSION} KRaft")


def _new_cluster_id() -> str:
    """A cluster id in Kafka's own form: 16 random bytes, base64url, no padding. Like Kafka's
    `Uuid.randomUuid`, never one starting with '-', which the storage tool would read as an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
