"""Prometheus metrics of the landing workers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_LANDED = Counter("ordertrack_rows_landed", "Rows appended to raw tables", ["table"])
ROWS_DELETED = Counter("ordertrack_rows_deleted", "Of the rows landed: source deletes (binlog CDC tables)", ["table"])
ROWS_REJECTED = Counter("ordertrack_rows_dead_lettered_landing", "Messages rejected at landing", ["table"])
BATCH_SECONDS = Histogram("ordertrack_landing_batch_seconds", "Duration of one landing transaction", ["table"])
LAG_MESSAGES = Gauge("ordertrack_lag_messages", "Committed messages not yet landed", ["table", "partition"])
LAG_SECONDS = Gauge("ordertrack_lag_seconds", "Age of the oldest message not yet landed", ["table"])
