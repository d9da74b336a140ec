"""`ordertrack generate`: play a synthetic order-tracking workload into the source."""

from __future__ import annotations

import signal
import time
from typing import Optional

import typer

from ordertrack.cli.output import print_json
from ordertrack.errors import ConfigError
from ordertrack.log import get_logger
from ordertrack.progress import track
from ordertrack.source.workload import WorkloadModel, WorkloadParams
from ordertrack.source.writer import (
    WriteTotals,
    open_workload_connection,
    run_history,
    run_live,
    source_clock_and_next_id,
)
from ordertrack.timeparse import format_utc, parse_duration, parse_utc

log = get_logger(__name__)


def generate(
    ctx: typer.Context,
    orders_per_minute: float = typer.Option(20.0, "--orders-per-minute", "-r", min=0.001, help="Mean new orders per minute."),
    history_days: float = typer.Option(0.0, "--history-days", min=0, help="Back-fill this many days of history first."),
    live: bool = typer.Option(False, "--live", help="Then keep writing in real time."),
    duration: Optional[str] = typer.Option(None, "--duration", help="Stop live mode after this long (30s, 15m, 2h); default: until Ctrl-C."),
    seed: int = typer.Option(42, "--seed", help="Random seed; the same seed, --until and source state give the same rows."),
    until: Optional[str] = typer.Option(None, "--until", help="End of the history, UTC 'YYYY-mm-dd HH:MM:SS' (default: the source's clock)."),
    scan_interval_minutes: float = typer.Option(180.0, "--scan-interval-minutes", min=0.01, help="Mean minutes between two scans of a parcel."),
    burst_probability: float = typer.Option(0.02, "--burst-probability", min=0, max=1, help="Chance an arrival is a partner batch sharing one second."),
    burst_size: int = typer.Option(200, "--burst-size", min=2, help="Mean orders in a partner batch."),
    as_json: bool = typer.Option(False, "--json", help="Print the totals as JSON."),
) -> None:
    """Play realistic order lifecycles into the source tables (orders, tracking state, scan events)."""
    if not history_days and not live:
        raise ConfigError("Nothing to generate: give --history-days N, --live, or both.")
    try:
        live_seconds = parse_duration(duration) if duration else None
        end = parse_utc(until) if until else None
    except ValueError as exc:
        raise ConfigError(f"{exc}.") from None

    settings = ctx.obj.settings
    params = WorkloadParams(
        orders_per_minute=orders_per_minute,
        scan_interval_minutes=scan_interval_minutes,
        burst_probability=burst_probability,
        burst_mean_size=burst_size,
    )
    with open_workload_connection(settings) as conn:
        db_now, next_id = source_clock_and_next_id(conn)
        end = end or db_now
        start = int(end - history_days * 86400)
        model = WorkloadModel(params, seed=seed, start=start, first_order_id=next_id)
        totals = WriteTotals()
        started = time.monotonic()
        if history_days:
            # Progress in hours of source time written (one transaction a slice), with the rows so
            # far; hours, not days: the bar counts whole units, and a history is often under a day.
            with track("generate history", total=round((end - start) / 3600, 2), unit="hours") as progress:
                totals = run_history(
                    conn, model, end,
                    on_slice=lambda t, tot: progress.update(done=round((t - start) / 3600, 2), rows=tot.orders + tot.scans),
                )
            log.info("generate.history.done", orders=totals.orders, scans=totals.scans,
                     start=format_utc(start), end=format_utc(end))
        if live:
            stop = {"flag": False}
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
            try:
                live_totals = run_live(
                    conn, model, live_seconds, clock_offset=db_now - time.time(),
                    should_stop=lambda: stop["flag"],
                )
            finally:
                signal.signal(signal.SIGTERM, previous)
            totals.merge(live_totals)
    result = {
        "orders": totals.orders,
        "scan_events": totals.scans,
        "tracking_writes": totals.tracking_writes,
        "pending_scan_events": model.pending_events,
        "history_start_utc": format_utc(start) if history_days else None,
        "history_end_utc": format_utc(end) if history_days else None,
        "seconds": round(time.monotonic() - started, 2),
        "seed": seed,
    }
    if as_json:
        print_json(result)
    else:
        typer.echo(
            f"generated {result['orders']} orders, {result['scan_events']} scan events, "
            f"{result['tracking_writes']} tracking writes in {result['seconds']}s (seed {seed})"
        )
