"""The Kafka ACLs a pipeline's principal needs, and nothing more, derived from its config.

One list serves three readers: `ordertrack topics acls` prints it for the cluster's admin (or
applies it with `--apply`), the secured local stack applies it for its pipeline user, and the
README's least-privilege table is this list in words. What each grant is for:

* table topics (each table's, CDC ones included): Read (drain, worker, replay, lag), Write (the
  poller), Describe (metadata, end offsets);
* the watermark topic: Read, Write, Describe (the poller writes a window's watermark in the
  window's transaction; `watermarks seed|set` write operator moves);
* the dead-letter topic: Read (the extraction check), Write (the landing's rejects), Describe;
* consumer groups starting with `<pipeline>.`: Read, Describe (the landing group, the lag probe,
  the short-lived readers of replay, the checks and the watermark store);
* transactional ids starting with `<pipeline>.`: Write, Describe (`<pipeline>.producer.<table>`,
  `<pipeline>.backfill.<table>`, `<pipeline>.watermarks-admin`).

Topic creation (Create, DescribeConfigs, AlterConfigs) is not granted: `ordertrack topics create`
is an administrator's step; every other command finds its topics already there.

`connect_grants` is the same for the Kafka Connect worker that runs the pipeline's Debezium
connector (its own principal, `User:ordertrack-connect` in the local stack); what each of its
grants is for is said next to it, and docs/RUNTIME.md has what the broker denied without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

from ordertrack.config import PipelineConfig
from ordertrack.tables import TableRegistry


@dataclass(frozen=True, order=True)
class Grant:
    resource: str  # topic | group | transactional-id
    pattern: str  # literal | prefixed
    name: str
    operation: str  # Read | Write | Describe | Create | DescribeConfigs
    why: str

    def binding(self, principal: str) -> AclBinding:
        return AclBinding(
            _RESOURCE[self.resource], self.name,
            ResourcePatternType.PREFIXED if self.pattern == "prefixed" else ResourcePatternType.LITERAL,
            principal, "*", _OPERATION[self.operation], AclPermissionType.ALLOW,
        )


_RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
             "transactional-id": ResourceType.TRANSACTIONAL_ID}
_OPERATION = {"Read": AclOperation.READ, "Write": AclOperation.WRITE, "Describe": AclOperation.DESCRIBE,
              "Create": AclOperation.CREATE, "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS}


def pipeline_grants(config: PipelineConfig) -> list[Grant]:
    """Every grant the pipeline's Kafka principal needs, sorted, without repeats."""
    pipeline = config.pipeline.name
    grants: set[Grant] = set()
    for spec in TableRegistry(config):
        producer = "the poller publishes windows" if not spec.binlog else "Debezium publishes it (its own principal)"
        grants.add(Grant("topic", "literal", spec.topic, "Read", "the landing, replay and lag read it"))
        grants.add(Grant("topic", "literal", spec.topic, "Describe", "metadata and end offsets"))
        if not spec.binlog:
            grants.add(Grant("topic", "literal", spec.topic, "Write", producer))
    k = config.kafka
    for op, why in (("Read", "watermarks are read back at every start"),
                    ("Write", "each window's watermark, in the window's transaction"),
                    ("Describe", "metadata and end offsets")):
        grants.add(Grant("topic", "literal", k.watermark_topic, op, why))
    for op, why in (("Read", "the extraction check reads the dead letters"),
                    ("Write", "the landing sends rejected messages here"),
                    ("Describe", "metadata and end offsets")):
        grants.add(Grant("topic", "literal", k.dead_letter_topic, op, why))
    for op in ("Read", "Describe"):
        grants.add(Grant("group", "prefixed", f"{pipeline}.", op,
                         "the landing group, the lag probe, replay's and the checks' readers"))
    for op in ("Write", "Describe"):
        grants.add(Grant("transactional-id", "prefixed", f"{pipeline}.", op,
                         "the live producer, backfills and operator watermark moves"))
    return sorted(grants)


def pipeline_acls(config: PipelineConfig, principal: str) -> list[AclBinding]:
    """`pipeline_grants` as ALLOW bindings for `principal` (e.g. `User:ordertrack`), any host."""
    return [g.binding(principal) for g in pipeline_grants(config)]


def connect_grants(config: PipelineConfig, group_id: str, storage_prefix: str) -> list[Grant]:
    """Every grant the Kafka Connect worker's principal needs to run this pipeline's Debezium
    connector with exactly-once source support, sorted, without repeats: the worker's own
    (group `group_id`, its `<storage_prefix>.configs|offsets|status` topics, the leader's
    transactional id) and the connector's (its table topics, its heartbeat topic, its task's
    transactional id). Empty of connector grants when no table uses Debezium."""
    from ordertrack.tables import cdc_topic_prefix

    grants: set[Grant] = set()
    for op in ("Read", "Describe"):
        grants.add(Grant("group", "literal", group_id, op, "the workers' group: joining it, its leader, rebalances"))
    for kind in ("configs", "offsets", "status"):
        topic = f"{storage_prefix}.{kind}"
        for op, why in (("Read", f"the worker reads every {kind[:-1]} record back at start"),
                        ("Write", f"the worker writes {kind}" + (" in each task's transaction" if kind == "offsets"
                                                                 else "")),
                        ("Describe", "metadata and end offsets"),
                        ("Create", "the first worker creates it (compacted, replication factor from the worker)"),
                        ("DescribeConfigs", "the worker checks it is compacted before using it")):
            grants.add(Grant("topic", "literal", topic, op, why))
    # Exactly-once source support: the leader writes the config topic in a transaction of its own ...
    for op in ("Write", "Describe"):
        grants.add(Grant("transactional-id", "literal", f"connect-cluster-{group_id}", op,
                         "the leader's config-topic writes (exactly-once source support)"))
    specs = TableRegistry(config).binlog()
    if specs:
        connector = config.cdc.connector
        # ... and each task writes its events and its offsets in one: `<group>-<connector>-<task>`
        # (one task: the connector config says tasks.max=1). The leader fences it by the same id.
        for op in ("Write", "Describe"):
            grants.add(Grant("transactional-id", "literal", f"{group_id}-{connector}-0", op,
                             "the task's transactions: events and binlog position commit together"))
        heartbeat = f"__debezium-heartbeat.{cdc_topic_prefix(config)}"
        for topic, what in ([(s.topic, "change events") for s in specs] + [(heartbeat, "heartbeats")]):
            grants.add(Grant("topic", "literal", topic, "Write", f"the connector publishes its {what}"))
            grants.add(Grant("topic", "literal", topic, "Describe", "metadata; the task looks it up before writing"))
            grants.add(Grant("topic", "literal", topic, "Create",
                             "the task creates it when missing (topic.creation.default.*)"))
    return sorted(grants)


def connect_acls(config: PipelineConfig, principal: str, group_id: str, storage_prefix: str) -> list[AclBinding]:
    """`connect_grants` as ALLOW bindings for `principal` (e.g. `User:ordertrack-connect`), any host."""
    return [g.binding(principal) for g in connect_grants(config, group_id, storage_prefix)]
