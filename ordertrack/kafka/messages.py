"""Typed access to what confluent-kafka's consumer returns.

Its stub types `Message.topic()`, `.partition()` and `.offset()` Optional, since a message built
by hand, or a client-wide error event, has none; a record, and an end-of-partition event, always
has all three. Read them here, once, rather than asserting at every use."""

from __future__ import annotations

from typing import cast

from confluent_kafka import Message


def position(m: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a record or an end-of-partition event a consumer returned
    (not of any other error event)."""
    return cast("tuple[str, int, int]", (m.topic(), m.partition(), m.offset()))
