"""Freshness: how far the published data is behind now (watermark age) and how far landing is
behind Kafka (consumer lag), against the configured limits."""

from __future__ import annotations

from dataclasses import dataclass

from ordertrack.config import DataQualityConfig
from ordertrack.watermarks.model import Watermark


@dataclass
class TableFreshness:
    table: str
    watermark_age_minutes: float | None
    lag_messages: int
    lag_minutes: float
    stale_watermark: str | None = None
    """Why the watermark is too old (None when fresh)."""
    lagging: str | None = None
    """Why the lag is too high (None when within limits)."""
    connector_down: str | None = None
    """A Debezium table: why its connector carries no changes (missing, failed, paused), or None."""


def judge(tables: list[str], now: float, latest: dict[str, Watermark], lag: dict[str, tuple[int, float]],
          cfg: DataQualityConfig, binlog: frozenset[str] = frozenset(),
          connector_down: str | None = None) -> list[TableFreshness]:
    """`binlog`: tables Debezium carries, which have no watermark: their lag is judged, and
    `connector_down` (why their connector carries nothing, if it does not) is their finding; how far
    the connector is behind the binlog is `ordertrack connectors status`."""
    out = []
    for t in tables:
        mark = latest.get(t)
        age = None if mark is None else round((now - mark.position) / 60, 1)
        messages, minutes = lag.get(t, (0, 0.0))
        f = TableFreshness(t, age, messages, minutes)
        if t in binlog:
            f.connector_down = connector_down
        elif age is None:  # no watermark
            f.stale_watermark = "no watermark: the producer has never published this table"
        elif age > cfg.max_watermark_age_minutes:
            f.stale_watermark = f"watermark {age} minutes behind now (limit {cfg.max_watermark_age_minutes})"
        if messages > cfg.max_lag_messages or minutes > cfg.max_lag_minutes:
            f.lagging = (f"consumer lag {messages} messages, oldest {minutes} minutes "
                         f"(limits {cfg.max_lag_messages} messages, {cfg.max_lag_minutes} minutes)")
        out.append(f)
    return out
