"""Prometheus metrics of the sidecar: what alerting watches when nobody reads exit codes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOB_RUNS = Counter("ordertrack_job_runs", "Scheduled job runs by outcome", ["job", "status"])
JOB_SECONDS = Histogram("ordertrack_job_seconds", "Duration of a scheduled job run", ["job"],
                        buckets=(1, 5, 30, 60, 300, 900, 1800, 3600, 7200))
JOB_LAST_SUCCESS = Gauge("ordertrack_job_last_success_timestamp_seconds", "When a job last succeeded", ["job"])
DQ_OPEN_EXCEPTIONS = Gauge("ordertrack_dq_open_exceptions", "Open data-quality exceptions after the last dq run",
                           ["exception_type"])
