"""`ordertrack status [--json] [--watch [SECONDS]] [--table T ...]`: the grid view in one screen.

Gathering is `ordertrack.status`; this module wires the stages' readers into it (the CLI is the
one place that may), draws the report, and turns it into the exit code a monitor hooks on.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import typer
from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ordertrack.cli import inputs
from ordertrack.cli.output import console, print_json
from ordertrack.config import ScheduleConfig, default_config_path
from ordertrack.errors import ConfigError
from ordertrack.preflight import run_preflight
from ordertrack.preflight.warehouse import duckdb_path, safe_url
from ordertrack.settings import Settings
from ordertrack.status import (
    EXIT_UNREACHABLE,
    RunningWork,
    Section,
    Service,
    StatusInputs,
    StatusReport,
    TableStatus,
    gather,
    lag_by_table,
    redacted,
    services_from_findings,
)
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc
from ordertrack.warehouse.engine import WarehouseEngine
from ordertrack.warehouse.factory import open_engine

WATCH_DEFAULT = "5s"
WATERMARK_WAIT_SECONDS = 15.0
"""How long status waits for an open Kafka transaction on the watermark topic to end. The store's
own wait (the transaction timeout, minutes) suits a producer, not a screen: past this the
watermarks are `unavailable` with the store's sentence, and the next refresh tries again."""

JOBS: tuple[str, ...] = tuple(ScheduleConfig.model_fields)
"""The sidecar runs one job per `schedule` entry (`cli.wiring.scheduler_jobs`)."""

VERDICT_STYLE = {"fresh": "green", "stale": "bold red", "unknown": "yellow"}


def status(
    ctx: typer.Context,
    seconds: Optional[str] = typer.Argument(
        None, metavar="SECONDS", show_default=False,
        help=f"With --watch: time between refreshes (default {WATCH_DEFAULT}; 10, 30s, 1m)."),
    table: Optional[list[str]] = typer.Option(None, "--table", "-t", help="Only these tables (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as one JSON document."),
    watch: bool = typer.Option(False, "--watch", help="Redraw in place every SECONDS until Ctrl-C."),
) -> None:
    """Per table: watermark and its age, last window, rows published in the last hour, landing lag,
    last landed and merged batch, open exceptions, freshness verdict; then the services and the
    sidecar's last run of each job. Exit 0 when every table is fresh, 1 when one breaches a
    freshness limit (or could not be judged), 4 when a service is unreachable."""
    state = ctx.obj
    if seconds is not None and not watch:
        raise ConfigError(f"{seconds!r} is the refresh interval of --watch: give --watch too "
                          f"(`ordertrack status --watch {seconds}`).")
    if watch and as_json:
        raise ConfigError("--watch redraws a screen and --json prints one document: give only one of them.")
    interval = inputs.duration("--watch", seconds or WATCH_DEFAULT)
    specs = inputs.tables(state.registry, table)
    wired = _inputs(state, specs)
    secrets = _secrets(state.settings)

    def collect() -> StatusReport:
        report = gather(specs, JOBS, state.config.dq, wired, raise_bugs=bool(os.environ.get("ORDERTRACK_TRACEBACK")))
        return redacted(report, secrets)

    if watch:
        _watch(collect, interval)
        return
    report = collect()
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(render(report))
    if report.exit_code == EXIT_UNREACHABLE:
        typer.secho(f"error: {report.unreachable[0]}", err=True, fg=typer.colors.RED)
    raise typer.Exit(report.exit_code)


# -- wiring ---------------------------------------------------------------------------------------

class _NothingLanded:
    """The ledger of a warehouse that does not exist yet: nothing has landed, so every committed
    message is lag (what `ordertrack lag` says there, without creating the file)."""

    def next_offsets(self, topic: str) -> dict[int, int]:
        return {}


def _inputs(state, specs: list[TableSpec]) -> StatusInputs:  # noqa: ANN001 - CliState
    from consumers.lag import measure_lag
    from producers.runner import watermark_store

    config, settings = state.config, state.settings
    store = watermark_store(config, settings)
    store.wait_seconds = min(store.wait_seconds, WATERMARK_WAIT_SECONDS)

    def services() -> list:
        report = run_preflight(config, settings, config_path=str(state.config_path or default_config_path()))
        return services_from_findings(report.findings, _where(settings))

    def lag(engine: WarehouseEngine | None) -> dict[str, tuple[int, float]]:
        ledger: Any = engine if engine is not None else _NothingLanded()  # measure_lag reads only next_offsets
        return lag_by_table(measure_lag(config, settings, ledger, specs))

    connector_down = None
    if any(s.binlog for s in specs):
        from ordertrack.cli.wiring import dq_inputs

        # Only its connector check is used here, and that asks Kafka Connect alone.
        connector_down = dq_inputs(state, None).connector_down
    return StatusInputs(services=services, latest_watermarks=store.latest, watermark_history=store.history,
                        warehouse=lambda: _warehouse(state), lag=lag, connector_down=connector_down,
                        running=lambda engine: running_work(store, engine))


RUNNING_LOOKBACK_SECONDS = 7 * 86400
"""How far back unfinished backfill runs are looked for (older ones are long abandoned)."""


def running_work(store, engine: WarehouseEngine | None) -> dict[str, list[RunningWork]]:  # noqa: ANN001
    """Backfill runs not at their end yet (from the watermark topic) and replays still re-landing
    (from the warehouse), by table."""
    from consumers.replay import replays
    from producers.backfill import unfinished_runs

    out: dict[str, list[RunningWork]] = {}
    now = time.time()
    for m in unfinished_runs(store.history(now - RUNNING_LOOKBACK_SECONDS, include_backfill=True)):
        assert m.run_start is not None and m.run_end is not None  # a backfill record names its run's period
        done = (m.position - m.run_start) / max(1, m.run_end - m.run_start)
        out.setdefault(m.table, []).append(RunningWork(
            "backfill", f"run {m.run_id} {format_utc(m.run_start)}..{format_utc(m.run_end)} at {format_utc(m.position)} "
                        f"({done:.0%}; last chunk {round((now - m.written_at) / 60, 1)} min ago: running, or interrupted "
                        "and resumed by the same command)", m.written_at))
    if engine is not None:
        by_id: dict[tuple[str, str], list] = {}
        for r in replays(engine, open_only=True):
            by_id.setdefault((r.table, r.replay_id), []).append(r)
        for (table, rid), parts in by_id.items():
            total = sum(r.to_offset - r.from_offset for r in parts)
            done = sum(r.next_offset - r.from_offset for r in parts)
            out.setdefault(table, []).append(RunningWork(
                "replay", f"{rid}: {done} of {total} offsets re-landed on {len(parts)} partition(s)", None))
    return out


def _warehouse(state) -> WarehouseEngine | None:  # noqa: ANN001 - CliState
    """The warehouse, or None where WAREHOUSE_URL names a DuckDB file nothing has created yet: a
    status call only reads, so it leaves creating it to the first landing."""
    settings = state.settings
    url = settings.warehouse.url
    if (urlparse(url).scheme == "duckdb" and duckdb_path(url) and "warehouse" not in settings.defaulted
            and not Path(duckdb_path(url)).exists()):
        return None
    # Under the built-in default a missing file is refused with one sentence (wrong folder?).
    return open_engine(state.config, settings, create="if_configured")


def _where(settings: Settings) -> dict[Service, str]:
    m = settings.mysql
    return {"source": f"MySQL {m.unix_socket or f'{m.host}:{m.port}'}",
            "kafka": f"Kafka {settings.kafka.bootstrap_servers}",
            "warehouse": safe_url(settings.warehouse.url)}


def _secrets(settings: Settings) -> list[str]:
    values = [settings.mysql.password, settings.workload.password, settings.warehouse.password,
              settings.s3.secret_access_key, settings.connect.mysql_password]
    return [v.get_secret_value() for v in values if v is not None]


# -- drawing --------------------------------------------------------------------------------------

def _watch(collect: Callable[[], StatusReport], interval: float) -> None:
    """Redraw until Ctrl-C, then exit 0. Ctrl-C only sets a flag: raised as KeyboardInterrupt in
    the middle of a read, a client library (DuckDB) could turn it into an error of that read and
    carry on; a second Ctrl-C does not wait for the refresh in flight."""
    stop = threading.Event()

    def interrupted(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        with Live(render(collect(), interval), console=console, auto_refresh=False) as live:
            while not stop.wait(interval):
                live.update(render(collect(), interval), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
    raise typer.Exit(0)


def render(report: StatusReport, every: float | None = None) -> RenderableType:
    now = report.generated_at
    head = f"ordertrack status at {format_utc(now)} UTC"
    if every is not None:
        head += f" (every {every:g}s; Ctrl-C stops)"
    parts: list[RenderableType] = [Text(head, style="bold"), _tables_view(report)]
    # What could not be read is told once per section below, not again for every table.
    notes = [f"{t.table}: {p}" for t in report.tables for p in t.freshness.problems]
    notes += [f"{t.table}: connector {t.freshness.connector}" for t in report.tables
              if (t.freshness.connector or "").startswith("not checked")]
    notes += [f"unavailable: {section}: {why}" for section, why in report.unavailable.items()]
    notes += [f"open exceptions of no configured table: {k} {n}" for k, n in report.other_exceptions.items()]
    if notes:
        parts.append(Text("\n".join(notes), style="yellow"))
    parts.append(_services_view(report))
    parts.append(_jobs_view(report))
    parts.append(Text(_summary(report)))
    return Group(*parts)


def _summary(report: StatusReport) -> str:
    code = report.exit_code
    if code == 0:
        return "every table fresh (exit 0)"
    if code == EXIT_UNREACHABLE:
        return f"a service is unreachable (exit {code})"
    return f"{sum(t.freshness.verdict != 'fresh' for t in report.tables)} table(s) not fresh (exit {code})"


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    text = format_utc(ts)
    # Today's times need no date; anything older shows it, which is itself a warning sign.
    return text[11:] if text[:10] == format_utc(now)[:10] else text[:16]


def _tables_view(report: StatusReport) -> Group:
    """Two grids of one row per table, so each fits a terminal: what was published and judged,
    then what landed (rich would silently squeeze columns out of one wide grid)."""
    na = "unavailable"
    u, now = report.unavailable, report.generated_at
    published = _grid("tables: published", ("table", "fresh", "watermark", "last window", "1h rows", "lag"))
    landed = _grid("tables: landed", ("table", "last landed", "last merged", "unmerged", "open exceptions", "running"))
    for t in report.tables:
        published.add_row(
            t.table,
            Text(t.freshness.verdict, style=VERDICT_STYLE[t.freshness.verdict]),
            _watermark_cell(t, u, now),
            "-" if t.binlog else na if "watermarks" in u else _window_cell(t, now),
            "-" if t.binlog else na if t.published_last_hour is None else str(t.published_last_hour),
            na if t.lag_messages is None else f"{t.lag_messages} msg, {t.lag_minutes:g} min",
        )
        led = t.ledger
        landed.add_row(
            t.table,
            na if led is None else _when(led.last_landed_at, now),
            na if led is None else _when(led.last_merged_at, now),
            na if led is None else str(led.unmerged_batches),
            na if t.open_exceptions is None else ", ".join(f"{k} {n}" for k, n in t.open_exceptions.items()) or "-",
            "; ".join(f"{r.kind} {r.detail}" for r in t.running) or "-",
        )
    return Group(published, landed)


def _grid(title: str, columns: tuple[str, ...]) -> Table:
    view = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for c in columns:
        view.add_column(c, no_wrap=c in ("table", "fresh"))
    return view


def _watermark_cell(t: TableStatus, unavailable: dict[Section, str], now: float) -> str:
    if t.binlog:
        return "binlog CDC"
    if "watermarks" in unavailable:
        return "unavailable"
    if t.watermark is None:
        return "none yet"
    return f"{_when(t.watermark, now)} ({t.watermark_age_minutes:g} min)"


def _window_cell(t: TableStatus, now: float) -> str:
    w = t.last_window
    if w is None:
        return "-"
    if w.status != "committed":  # an operator's move (set, seeded, imported) carries no rows
        return f"{w.status} at {_when(w.written_at, now)}"
    text = f"{w.rows} rows, {w.dead_lettered} dead-lettered, at {_when(w.written_at, now)}"
    if w.hold_seconds:
        text += f", held {w.hold_seconds}s: {w.hold_reason or 'no reason recorded'}"
    return text


def _services_view(report: StatusReport) -> Table:
    view = _grid("services", ("service", "where", "state", "detail"))
    for s in report.services:
        state = Text("up", style="green") if s.reachable else Text("DOWN", style="bold red")
        detail = s.error or s.note or ""
        if s.reachable and s.problems:
            detail = f"{len(s.problems)} problem(s), see `ordertrack config check`: {s.problems[0]}"
        view.add_row(s.service, s.where, state, detail)
    return view


def _jobs_view(report: StatusReport) -> RenderableType:
    if report.jobs is None:
        return Text(f"scheduler jobs: unavailable ({report.unavailable.get('jobs', 'not read')})", style="yellow")
    view = _grid("scheduler jobs (last run)", ("job", "status", "slot", "finished", "error"))
    now = report.generated_at
    for j in report.jobs:
        error = j.error.splitlines()[0][:120] if j.error else ""  # the whole error is in --json
        view.add_row(j.job, j.status or "never ran",
                     _when(j.scheduled_for.timestamp(), now) if j.scheduled_for else "-",
                     _when(j.finished_at.timestamp(), now) if j.finished_at else "-", error)
    return view
