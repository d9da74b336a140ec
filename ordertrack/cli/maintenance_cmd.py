"""`ordertrack vacuum`, `ordertrack retention`, `ordertrack archive`, `ordertrack scheduler`."""

from __future__ import annotations

import signal
import threading
from datetime import datetime, timezone
from typing import Optional

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.progress import track
from ordertrack.warehouse.factory import open_engine


def vacuum(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Reclaim deleted mart rows now (Redshift: VACUUM DELETE ONLY, SORT ONLY on orders; DuckDB: CHECKPOINT)."""
    state = ctx.obj
    statements = open_engine(state.config, state.settings).vacuum(list(state.registry))
    if as_json:
        print_json({"statements": statements})
    else:
        for s in statements:
            typer.echo(s)


def retention(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Trim raw rows ingested longer ago than retention.raw_hours, keeping rows not merged yet."""
    from marts.maintenance import trim_raw

    state = ctx.obj
    out = trim_raw(open_engine(state.config, state.settings), state.registry, datetime.now(timezone.utc),
                   state.config.retention.raw_hours)
    if as_json:
        print_json(out)
    else:
        print_table(f"raw retention ({state.config.retention.raw_hours}h)", ["table", "deleted", "kept (not merged yet)"],
                    [(t, f["deleted"], f["kept_unmerged"]) for t, f in out.items()])


def archive(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Move mart rows older than the history cutoff into the half-year history tables."""
    from marts.maintenance import archive_all

    state = ctx.obj
    engine = open_engine(state.config, state.settings)
    with track("archive", unit="marts") as progress:
        out = archive_all(engine, state.registry, progress=progress)
    if as_json:
        print_json(out)
    else:
        print_table("archived", ["mart", "rows moved by period"], [(t, m or "nothing due") for t, m in out.items()])


scheduler_app = typer.Typer(help="The sidecar. Without a command it runs retention, archive, VACUUM and dq at their cron "
                            "slots until SIGTERM (stopping between jobs); `runs` lists what ran.",
                            invoke_without_command=True)


@scheduler_app.callback()
def scheduler(
    ctx: typer.Context,
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", envvar="ORDERTRACK_METRICS_PORT", help="Serve Prometheus metrics on this port."),
) -> None:
    """Run the sidecar until SIGTERM (it stops between jobs). `scheduler runs` lists recorded runs."""
    if ctx.invoked_subcommand is not None:
        return
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    from ordertrack.cli.wiring import scheduler_jobs
    from ordertrack.outage import Outage, retry_until_ok
    from ordertrack.warehouse.job_runs import RunStore
    from sidecar.scheduler import Scheduler

    state = ctx.obj
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    engine = retry_until_ok(lambda: open_engine(state.config, state.settings, create="always"), Outage("warehouse"), stop)
    Scheduler(scheduler_jobs(state, engine), RunStore(engine), stop=stop).serve()


@scheduler_app.command("runs")
def runs(
    ctx: typer.Context,
    job: Optional[str] = typer.Option(None, "--job"),
    limit: int = typer.Option(20, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recorded job runs, newest first."""
    from dataclasses import asdict

    from ordertrack.warehouse.job_runs import RunStore

    state = ctx.obj
    rows = RunStore(open_engine(state.config, state.settings, create="never")).recent(limit, job)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table("job runs", ["job", "slot", "started", "finished", "status", "error"],
                [(r.job, r.scheduled_for, r.started_at, r.finished_at, r.status, r.error or "") for r in rows])
