"""Checks against Kafka: the broker answers and every topic the config needs exists."""

from __future__ import annotations

from ordertrack.config import PipelineConfig
from ordertrack.errors import SecurityError, ServiceUnavailableError
from ordertrack.kafka.admin import KafkaAdmin, TopicRole, TopicSpec, pipeline_topics
from ordertrack.preflight.findings import Finding, error, unreachable
from ordertrack.settings import Settings

ROLE_NAMES: dict[TopicRole, str] = {
    "table": "the rows of source table",
    "watermark": "the watermark topic, kafka.watermark_topic",
    "dead_letter": "the dead-letter topic, kafka.dead_letter_topic",
}


def topic_findings(needed: list[TopicSpec], existing: dict[str, int]) -> list[Finding]:
    """One error per topic the pipeline needs that Kafka does not have; pure."""
    out = []
    for t in needed:
        if t.name in existing:
            continue
        role = ROLE_NAMES[t.role]
        if t.role == "table":
            role = f"{role} {t.name.rsplit('.', 1)[-1]}"
        out.append(error("kafka", "kafka.topic",
                         f"Kafka topic {t.name} ({role}) does not exist: "
                         "run `ordertrack topics create`.", t.name))
    return out


def check_kafka(config: PipelineConfig, settings: Settings, timeout: float = 10.0) -> list[Finding]:
    try:
        existing = KafkaAdmin(settings.kafka, timeout=timeout).list_topics()
    except SecurityError as exc:  # a setting to fix, not a service away
        return [error("kafka", "kafka.security", str(exc))]
    except ServiceUnavailableError as exc:
        return [unreachable("kafka", "kafka.connect", str(exc))]
    return topic_findings(pipeline_topics(config), existing)
