"""Apache Kafka 4 (KRaft, one combined broker+controller node) run from Maven Central jars.

A secured stack (`stack up --secure`, docs/RUNTIME.md) adds two listeners beside the plaintext one:

* `SASL_SSL` (`ORDERTRACK_KAFKA_SECURE_PORT`, 9094): TLS with the stack's server certificate and
  SCRAM-SHA-256/512 logins; the pipeline's user `ordertrack` (password in `.env`) is what the
  pipeline connects as;
* `MTLS` (`ORDERTRACK_KAFKA_MTLS_PORT`, 9095, protocol SSL): a client certificate is required; its
  CN becomes the principal (`client.pem`, CN `ordertrack` -> `User:ordertrack`).

The broker then authorizes every request (StandardAuthorizer). The plaintext listener stays: it is
the local administrator's (and the controller's and the broker's own), its principal
`User:ANONYMOUS` is a super user. It binds 127.0.0.1 only: a local-only convenience that a
production cluster does not have. Over it `up` creates the SCRAM credentials and applies the
pipeline principal's ACLs (`ordertrack.kafka.acls.pipeline_acls`, nothing more).
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import uuid
from typing import TYPE_CHECKING

from ordertrack.errors import OrdertrackError
from ordertrack.log import get_logger
from ordertrack.resources import resource_path
from ordertrack.stack.envfile import read_env
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import start_detached
from ordertrack.stack.service import PidTracked, ServiceState, ServiceStatus
from ordertrack.stack.tls import StackTLS
from ordertrack.stack.tools import MAVEN_HINT, fetch_with_maven, require, require_java

if TYPE_CHECKING:
    from confluent_kafka.admin import AclBinding, AdminClient

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

PIPELINE_USER = "ordertrack"
"""The pipeline's SCRAM user in a secured stack, and the CN of its client certificate."""
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_ITERATIONS = 8192
SUPER_USERS = ("User:ANONYMOUS",)  # the plaintext listener's principal: the local admin, the broker itself
# The client certificate's subject `CN=ordertrack[,...]` -> principal `User:ordertrack`.
PRINCIPAL_MAPPING = "RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT"
SECURE_ENV_KEYS = ("KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CA_LOCATION",
                   "KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS", "KAFKA_MTLS_BOOTSTRAP_SERVERS",
                   "KAFKA_CLIENT_CERTIFICATE", "KAFKA_CLIENT_KEY")
"""`.env` entries only a secured stack writes."""


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
        """The plaintext listener: the local administrator's (super user in a secured stack)."""
        return f"127.0.0.1:{self.layout.kafka_port}"

    @property
    def secure_bootstrap(self) -> str:
        return f"127.0.0.1:{self.layout.kafka_secure_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.layout.kafka_mtls_port}"

    @property
    def tls(self) -> StackTLS:
        return StackTLS(self.layout.tls_dir)

    def check_tools(self) -> None:
        require_java(17)
        if not (self.lib / ".complete").exists():
            require("mvn", MAVEN_HINT)

    def env(self) -> dict[str, str]:
        if not self.layout.secure:
            return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
        old = read_env(self.layout.env_file)
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.secure_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": PIPELINE_USER,
            # Made once and kept, like the MariaDB passwords; `up` (re)sets the broker's credential.
            "KAFKA_SASL_PASSWORD": old.get("KAFKA_SASL_PASSWORD") or secrets.token_urlsafe(18),
            "KAFKA_SSL_CA_LOCATION": str(self.tls.ca.cert_path),
            # Informational: the local admin's listener and the mutual-TLS one with its client
            # certificate. Deliberately not KAFKA_SSL_CERTIFICATE_LOCATION: every client would present it.
            "KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_MTLS_BOOTSTRAP_SERVERS": self.mtls_bootstrap,
            "KAFKA_CLIENT_CERTIFICATE": str(self.tls.client.cert_path),
            "KAFKA_CLIENT_KEY": str(self.tls.client.key_path),
        }

    # -- up ---------------------------------------------------------------------------------
    def up(self, env: dict[str, str] | None = None) -> ServiceStatus:
        """`env` is the stack's `.env` (the SCRAM password of a secured stack)."""
        if self.running_pid() is not None and self._properties() != self._current_properties():
            # e.g. a plaintext broker asked to run secured: listeners are read at start only.
            log.info("stack.kafka.restart", reason="configuration changed")
            self.down()
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
        if self.layout.secure:
            env = env or self.env()
            self._secure_accounts(env["KAFKA_SASL_PASSWORD"])
            self.wait_healthy(lambda: self._metadata_ok(self.sasl_conf(env["KAFKA_SASL_PASSWORD"])),
                              timeout=60, interval=1.0, log_file=self.dir / "logs" / "server.log",
                              not_ready=f"Kafka did not answer a SASL_SSL metadata request on {self.secure_bootstrap}")
        return self.status()

    def sasl_conf(self, password: str, user: str = PIPELINE_USER) -> dict[str, str]:
        """librdkafka settings for the SASL_SSL listener as `user`."""
        return {"bootstrap.servers": self.secure_bootstrap, "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
                "ssl.ca.location": str(self.tls.ca.cert_path)}

    def admin(self) -> AdminClient:
        """An AdminClient on the plaintext listener: the local administrator (a super user)."""
        from confluent_kafka.admin import AdminClient

        from ordertrack.kafka.clients import routed

        return AdminClient(routed({"bootstrap.servers": self.bootstrap}))

    def set_scram_password(self, user: str, password: str) -> None:
        """Create or replace `user`'s SCRAM-SHA-256 and -512 credentials (idempotent)."""
        from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

        admin = self.admin()
        for mech in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
            upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, SCRAM_ITERATIONS),
                                                  password.encode())
            try:
                for fut in admin.alter_user_scram_credentials([upsert], request_timeout=30).values():
                    fut.result(timeout=40)
            except Exception as e:  # the password is not part of any client error; the reason is
                raise OrdertrackError(f"Setting the SCRAM credential of Kafka user {user!r} failed: "
                                      f"{type(e).__name__}: {e}") from None

    def apply_acls(self, bindings: list[AclBinding], *, exactly_for: str | None = None) -> None:
        """Create ACL bindings (idempotent: an existing binding is left as it is). With
        `exactly_for` (a principal), also remove that principal's bindings not among them: what
        an earlier run granted and left behind (a test killed before its clean-up) is gone."""
        from ordertrack.kafka.admin import KafkaAdmin
        from ordertrack.settings import KafkaSettings

        # The local administrator's plaintext listener, whatever KAFKA_* the environment holds.
        admin = KafkaAdmin(KafkaSettings.model_construct(bootstrap_servers=self.bootstrap), timeout=30)
        if exactly_for is not None:
            wanted = set(bindings)
            admin.delete_acls([b for b in admin.acls_of(exactly_for) if b not in wanted])
        admin.create_acls(bindings)

    def _secure_accounts(self, password: str) -> None:
        """The pipeline's SCRAM user and its ACLs (those of the default pipeline config)."""
        from ordertrack.config import load_pipeline_config
        from ordertrack.kafka.acls import pipeline_acls

        self.set_scram_password(PIPELINE_USER, password)
        config = load_pipeline_config(resource_path("pipeline.yaml"))
        self.apply_acls(pipeline_acls(config, f"User:{PIPELINE_USER}"), exactly_for=f"User:{PIPELINE_USER}")

    def _fetch(self) -> None:
        fetch_with_maven(resource_path("kafka-pom.xml"), self.lib, f"Kafka {KAFKA_VERSION}")

    def _current_properties(self) -> str:
        try:
            return self.props.read_text()
        except OSError:
            return ""

    def _configure(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.props.write_text(self._properties())

    def _properties(self) -> str:
        lp, cp = self.layout.kafka_port, self.layout.kafka_controller_port
        listeners = f"PLAINTEXT://127.0.0.1:{lp},CONTROLLER://127.0.0.1:{cp}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        if self.layout.secure:
            listeners += f",SASL_SSL://127.0.0.1:{self.layout.kafka_secure_port},MTLS://127.0.0.1:{self.layout.kafka_mtls_port}"
            protocols += ",SASL_SSL:SASL_SSL,MTLS:SSL"
        return "\n".join(
                [
                    "# Written by `ordertrack stack up`: a single-node KRaft broker+controller.",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"listeners={listeners}",
                    f"advertised.listeners={listeners}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map={protocols}",
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
                    *(self._secure_properties() if self.layout.secure else []),
                    "",
                ]
            )

    def _secure_properties(self) -> list[str]:
        tls = self.tls
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return [
            "# Secured (`stack up --secure`): SASL_SSL with SCRAM, and SSL with client certificates.",
            "inter.broker.listener.name=PLAINTEXT",
            f"sasl.enabled.mechanisms={','.join(SCRAM_MECHANISMS)}",
            *(f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config={jaas}" for m in SCRAM_MECHANISMS),
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.kafka_keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca.cert_path}",
            "listener.name.mtls.ssl.client.auth=required",
            f"ssl.principal.mapping.rules={PRINCIPAL_MAPPING}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users={';'.join(SUPER_USERS)}",
            "allow.everyone.if.no.acl.found=false",
        ]

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

    def _metadata_ok(self, conf: dict[str, str] | None = None) -> bool:
        from confluent_kafka.admin import AdminClient

        from ordertrack.kafka.clients import routed

        try:
            md = AdminClient(routed(conf or {"bootstrap.servers": self.bootstrap})).list_topics(timeout=3)
        except Exception:  # any client error means "not ready yet"
            return False
        return len(md.brokers) > 0

    # -- down / status ------------------------------------------------------------------------
    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus(self.name, self.bootstrap, "stopped", None)
        state: ServiceState = "running" if self._metadata_ok() else "unhealthy"
        detail = f"Kafka {KAFKA_VERSION} KRaft"
        if self.layout.secure:
            detail += (f"; SASL_SSL (SCRAM) {self.secure_bootstrap}, mTLS {self.mtls_bootstrap};"
                       f" plaintext {self.bootstrap} is the local admin's")
        return ServiceStatus(self.name, self.bootstrap, state, pid, detail)


def _new_cluster_id() -> str:
    """A cluster id in Kafka's own form: 16 random bytes, base64url, no padding. Like Kafka's
    `Uuid.randomUuid`, never one starting with '-', which the storage tool would read as an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
