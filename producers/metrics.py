"""Prometheus metrics of the producer (served by `ordertrack produce --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROWS_PUBLISHED = Counter("ordertrack_producer_rows_published", "Rows published to the table topics", ["table"])
ROWS_DEAD_LETTERED = Counter("ordertrack_producer_rows_dead_lettered", "Rows sent to the dead-letter topic", ["table"])
WATERMARK = Gauge("ordertrack_producer_watermark_seconds", "Committed watermark position (unix seconds)", ["table"])
WINDOW_HOLD = Gauge(
    "ordertrack_producer_window_hold_seconds",
    "How far the window end was held back for open transactions or replica lag",
    ["table"],
)
CLOCK_DRIFT = Gauge("ordertrack_source_clock_drift_seconds", "Source clock minus the worker's clock")
SERVICE_UP = Gauge(
    "ordertrack_producer_service_up",
    "1 while the producer reaches the service (source, kafka), 0 while it waits out an outage",
    ["service"],
)
SUB_WINDOWS = Counter(
    "ordertrack_producer_sub_windows",
    "Sub-windows committed (a window larger than the row or span limit is published as several)",
    ["table"],
)
