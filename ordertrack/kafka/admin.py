"""Topic administration with confluent-kafka's AdminClient.

Topics are created explicitly, with partitions and retention from the pipeline config; the broker
runs with `auto.create.topics.enable=false` so a typo can never create a stray topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AclBinding, AclBindingFilter, AdminClient, NewTopic, OffsetSpec

from ordertrack.config import PipelineConfig
from ordertrack.errors import ServiceUnavailableError
from ordertrack.kafka.clients import routed
from ordertrack.kafka.security import check_handshake, client_conf, refusal
from ordertrack.log import get_logger
from ordertrack.settings import KafkaSettings
from ordertrack.tables import TableRegistry

log = get_logger(__name__)

TopicRole = Literal["table", "watermark", "dead_letter"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    role: TopicRole


def pipeline_topics(config: PipelineConfig) -> list[TopicSpec]:
    """Every topic the pipeline needs: one per table, the compacted watermarks, the dead letters."""
    k = config.kafka
    retention_ms = str(k.retention_hours * 3600 * 1000)
    specs = [
        TopicSpec(s.topic, k.partitions, {"retention.ms": retention_ms, "cleanup.policy": "delete"}, "table")
        for s in TableRegistry(config)
    ]
    # One watermark record per table key; compaction keeps the latest, forever.
    # Records stay uncompacted for a day: the extraction check reads the last hours of windows.
    specs.append(TopicSpec(k.watermark_topic, 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": str(86_400_000)},
                           "watermark"))
    specs.append(TopicSpec(k.dead_letter_topic, 1, {"retention.ms": str(30 * 86400 * 1000)}, "dead_letter"))
    return specs


class KafkaAdmin:
    def __init__(self, kafka: KafkaSettings, timeout: float = 15.0) -> None:
        self.bootstrap = kafka.bootstrap_servers
        self.kafka = kafka
        self.timeout = timeout
        check_handshake(kafka, timeout=min(timeout, 15.0))
        self._admin = AdminClient(routed(client_conf(kafka)))

    def _serve_logs(self) -> None:
        # An admin client hands over its queued log lines and errors only when polled.
        self._admin.poll(0)

    def list_topics(self) -> dict[str, int]:
        """Topic name -> partition count (internal topics left out)."""
        try:
            md = self._admin.list_topics(timeout=self.timeout)
        except KafkaException:
            raise ServiceUnavailableError(
                f"Kafka at {self.bootstrap} did not answer within {self.timeout:.0f}s: is it running? "
                "For the local stack run `ordertrack stack up`."
            ) from None
        finally:
            self._serve_logs()
        return {name: len(t.partitions) for name, t in md.topics.items() if not name.startswith("__")}

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> high watermark (the offset the next record will take) of `topic`."""
        try:
            md = self._admin.list_topics(topic, timeout=self.timeout).topics[topic]
            if md.error is not None:
                raise ServiceUnavailableError(f"Topic {topic} does not exist: run `ordertrack topics create`.")
            futures = self._admin.list_offsets(
                {TopicPartition(topic, p): OffsetSpec.latest() for p in md.partitions},
                isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=self.timeout,
            )
            return {tp.partition: f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            raise ServiceUnavailableError(
                f"Kafka at {self.bootstrap} did not answer for the end offsets of {topic}: {exc.args[0].str()}"
            ) from None
        finally:
            self._serve_logs()

    def ensure_topics(self, specs: list[TopicSpec]) -> list[str]:
        """Create the topics that are missing; return the names created."""
        existing = self.list_topics()
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        futures = self._admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config) for s in missing],
            request_timeout=self.timeout,
        )
        created = []
        for name, fut in futures.items():
            try:
                fut.result()
                created.append(name)
                log.info("kafka.topic.created", topic=name)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # lost a race with another process: fine
                    refused = refusal(exc.args[0], self.kafka, f"{name} (it is missing, or this principal may not "
                                                               "describe it: an administrator creates topics with "
                                                               "`ordertrack topics create`)")
                    if refused is not None:
                        raise refused from None
                    raise ServiceUnavailableError(f"Kafka refused to create topic {name}: {exc.args[0].str()}") from None
        return created

    def delete_topics(self, names: list[str]) -> None:
        existing = self.list_topics()
        todo = [n for n in names if n in existing]
        if not todo:
            return
        for name, fut in self._admin.delete_topics(todo, request_timeout=self.timeout).items():
            fut.result()
            log.info("kafka.topic.deleted", topic=name)

    def create_acls(self, bindings: list[AclBinding]) -> int:
        """Create the ALLOW bindings (creating an existing one is a no-op); return how many were sent."""
        if not bindings:
            return 0
        for binding, fut in self._admin.create_acls(bindings, request_timeout=self.timeout).items():
            try:
                fut.result()
            except KafkaException as exc:
                what = " ".join(str(getattr(x, "name", x)) for x in (binding.restype, binding.name, binding.operation))
                raise ServiceUnavailableError(
                    f"Kafka refused to create the ACL {what} for {binding.principal}: {exc.args[0].str()} "
                    "(creating ACLs takes an administrator's principal).") from None
        return len(bindings)

    def delete_acls(self, bindings: list[AclBinding]) -> None:
        """Remove exactly these bindings (one that is not there is no error)."""
        if not bindings:
            return
        filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                    b.permission_type) for b in bindings]
        for fut in self._admin.delete_acls(filters, request_timeout=self.timeout).values():
            try:
                fut.result()
            except KafkaException as exc:
                raise ServiceUnavailableError(f"Kafka refused to delete ACLs: {exc.args[0].str()}") from None

    def acls_of(self, principal: str) -> list[AclBinding]:
        """Every ACL binding of `principal`."""
        from confluent_kafka.admin import AclOperation, AclPermissionType, ResourcePatternType, ResourceType

        # None matches any name and host (confluent-kafka's own use; its stubs say str).
        mine = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal,  # type: ignore[arg-type]
                                None, AclOperation.ANY, AclPermissionType.ANY)  # type: ignore[arg-type]
        try:
            return list(self._admin.describe_acls(mine, request_timeout=self.timeout).result())
        except KafkaException as exc:
            raise ServiceUnavailableError(f"Kafka refused to list the ACLs of {principal}: {exc.args[0].str()}") from None
