"""Preflight: can this pipeline work with this config and these services?

`run_preflight` checks the YAML and the environment (already loaded and validated by the caller),
then, unless offline, asks each service in turn — the source, Kafka, the warehouse — and collects
every problem instead of stopping at the first. The CLI's `config check` prints the report.
"""

from __future__ import annotations

from collections.abc import Callable

from ordertrack.config import PipelineConfig
from ordertrack.errors import as_service_error
from ordertrack.preflight.findings import Finding, Report, Service, Severity, unreachable
from ordertrack.preflight.kafka import check_kafka
from ordertrack.preflight.source import check_source
from ordertrack.preflight.warehouse import check_warehouse, url_findings
from ordertrack.settings import Settings

__all__ = ["Finding", "Report", "Service", "Severity", "run_preflight"]

Check = Callable[[PipelineConfig, Settings], list[Finding]]


def _ask(service: Service, check: Check, config: PipelineConfig, settings: Settings) -> list[Finding]:
    """Run one service's checks; a connection lost midway is that service being unreachable."""
    try:
        return check(config, settings)
    except Exception as exc:
        lost = as_service_error(exc)
        if lost is None:
            raise
        return [unreachable(service, f"{service}.connect", str(lost))]


def _secrets(settings: Settings) -> list[str]:
    values = [settings.mysql.password, settings.workload.password, settings.warehouse.password,
              settings.s3.secret_access_key, settings.kafka.sasl_password, settings.kafka.ssl_key_password,
              settings.connect.mysql_password]
    return [v.get_secret_value() for v in values if v is not None]


def run_preflight(config: PipelineConfig, settings: Settings, *, config_path: str, offline: bool = False) -> Report:
    """Every problem of this config against these services (or the YAML and environment alone)."""
    report = Report(config_path=config_path, tables=len(config.tables), checked=["config"])
    url_problems = url_findings(config, settings)
    report.findings += url_problems
    if not offline:
        report.checked += ["source", "kafka", "warehouse"]
        report.findings += _ask("source", check_source, config, settings)
        report.findings += _ask("kafka", check_kafka, config, settings)
        if not any(f.severity == "error" for f in url_problems):
            report.findings += _ask("warehouse", check_warehouse, config, settings)
    return report.redacted(_secrets(settings))
