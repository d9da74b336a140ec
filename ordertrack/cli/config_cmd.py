"""`ordertrack config check | show`."""

from __future__ import annotations

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.config import default_config_path
from ordertrack.errors import ConfigError
from ordertrack.preflight import Report, Service, run_preflight
from ordertrack.preflight.findings import Finding, error
from ordertrack.preflight.warehouse import safe_url
from ordertrack.settings import Settings

app = typer.Typer(help="Validate and show the pipeline configuration.", no_args_is_help=True)

SERVICES: tuple[Service, ...] = ("source", "kafka", "warehouse")


@app.command()
def check(
    ctx: typer.Context,
    offline: bool = typer.Option(False, "--offline", help="Check the YAML and the environment only; ask no service."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check the pipeline YAML and the environment, then the source, Kafka and the warehouse; report
    every problem. Exit 0 without errors (warnings allowed), 2 when something must be fixed, 4 when
    the only errors are services that did not answer."""
    state = ctx.obj
    path = str(state.config_path or default_config_path())
    try:
        cfg = state.config
    except ConfigError as exc:
        _unloadable(path, "config.yaml", exc, as_json)
    try:
        settings = state.settings
    except ConfigError as exc:
        _unloadable(path, "config.environment", exc, as_json)
    report = run_preflight(cfg, settings, config_path=path, offline=offline)
    if as_json:
        print_json(report.as_dict())
    else:
        _print(report, settings)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _unloadable(path: str, check_name: str, exc: ConfigError, as_json: bool) -> None:
    """Nothing else can be checked without the YAML or the environment: one error, exit 2."""
    if not as_json:
        raise exc
    report = Report(config_path=path, tables=0, checked=["config"], findings=[error("config", check_name, str(exc))])
    print_json(report.as_dict())
    raise typer.Exit(report.exit_code)


def _where(service: Service, settings: Settings) -> str:
    m = settings.mysql
    return {
        "source": f"MySQL {m.unix_socket or f'{m.host}:{m.port}'} as {m.user!r}",
        "kafka": f"Kafka {settings.kafka.bootstrap_servers}",
        "warehouse": f"warehouse {safe_url(settings.warehouse.url)}",
    }[service]


def _state(report: Report, service: Service) -> str:
    if service not in report.checked:
        return "not checked (--offline)"
    found = [f for f in report.findings if f.service == service]
    if any(f.unreachable for f in found):
        return "did not answer, not checked further"
    return _counts(found) or "ok"


def _counts(findings: list[Finding]) -> str:
    parts = []
    for severity in ("error", "warning"):
        n = sum(f.severity == severity for f in findings)
        if n:
            parts.append(f"{n} {severity}{'s' if n > 1 else ''}")
    return ", ".join(parts)


def _print(report: Report, settings: Settings) -> None:
    for service in SERVICES:
        typer.echo(f"{_where(service, settings)}: {_state(report, service)}")
    for f in report.errors + report.warnings:
        typer.echo(f"{f.severity}: {f.message}")
    if report.errors:
        typer.echo(f"{report.config_path}: {_counts(report.findings)}")
    else:
        extra = f"; {_counts(report.warnings)}" if report.warnings else ""
        typer.echo(f"{report.config_path}: ok ({report.tables} tables{extra})")


@app.command()
def show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the tables with their derived topic, raw and mart names."""
    specs = list(ctx.obj.registry)
    if as_json:
        print_json([s.__dict__ for s in specs])
        return
    print_table(
        "tables",
        ["table", "cursor", "key", "tie-breaker", "topic", "raw", "mart", "page"],
        [
            (s.name, s.cursor_column, ",".join(s.key_columns), s.id_column, s.topic,
             f"{s.raw_schema}.{s.raw_table}", f"{s.mart_schema}.{s.mart_table}", s.batch_size)
            for s in specs
        ],
    )
