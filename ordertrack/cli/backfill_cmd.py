"""`ordertrack backfill`: re-publish a period of a table from the source (see `producers.backfill`)."""

from __future__ import annotations

import signal
import threading

import typer

from ordertrack.cli import inputs
from ordertrack.cli.output import print_json, print_table
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.progress import track
from ordertrack.timeparse import format_utc
from producers.backfill import BackfillResult, plan_backfill, run_backfill, source_rows
from producers.outage import OutageError
from producers.runner import watermark_store


def backfill(
    ctx: typer.Context,
    table: list[str] = typer.Option(..., "--table", "-t", help="The table to backfill (repeatable: one after another)."),
    from_time: str = typer.Option(..., "--from", help="Start of the period, 'YYYY-mm-dd HH:MM:SS' UTC (or unix seconds)."),
    to_time: str = typer.Option(..., "--to", help="End of the period (excluded)."),
    chunk: str = typer.Option("1h", "--chunk", help="Cursor span of one chunk (each its own Kafka transactions)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan (chunks, source rows, resume point); publish nothing."),
    restart: bool = typer.Option(False, "--restart", help="Start the period over instead of resuming an interrupted run."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan or the result as JSON."),
) -> None:
    """Re-publish [--from, --to) of a table from the source to its topic, chunk by chunk, beside the
    live producer and the worker (its own transactional id; the live watermark never moves). Running
    the same command again after an interruption resumes after the last committed chunk."""
    state = ctx.obj
    start, end = inputs.utc_time("--from", from_time), inputs.utc_time("--to", to_time)
    inputs.time_range(start, end)
    chunk_seconds = int(inputs.duration("--chunk", chunk))
    specs = inputs.polled_tables(state.registry, table)
    store = watermark_store(state.config, state.settings)
    marks = store.history(0, include_backfill=True)  # every run's records: read once for all tables
    plans = [plan_backfill(marks, spec, start, end, chunk_seconds, restart=restart) for spec in specs]
    timeout = state.config.processing.query_timeout_seconds
    for spec, plan in zip(specs, plans):
        if not plan.already_complete:
            plan.source_rows = source_rows(state.settings, spec, plan.resume_from, end, timeout)
    if dry_run:
        if as_json:
            print_json({"dry_run": True, "plans": [p.to_dict() for p in plans]})
        else:
            print_table("backfill plan (dry run: nothing published)",
                        ["table", "period (UTC)", "run", "starts at", "chunks", "source rows", "note"],
                        [(p.table, f"{format_utc(start)} .. {format_utc(end)}", p.run.run_id, format_utc(p.resume_from),
                          len(p.chunks), p.source_rows,
                          "already complete (--restart to publish again)" if p.already_complete
                          else "resumes an interrupted run" if p.resumed else "new run") for p in plans])
        return
    KafkaAdmin(state.settings.kafka).ensure_topics(pipeline_topics(state.config))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    results: list[BackfillResult] = []
    try:
        for spec, plan in zip(specs, plans):
            with track(f"backfill {spec.name}", plan.source_rows, "rows") as progress:
                results.append(run_backfill(state.config, state.settings, spec, plan, stop=stop, progress=progress))
            if results[-1].status not in ("published", "already_complete"):
                break
    except KeyboardInterrupt:  # between two chunks (within one, the run stops and says so)
        stop.set()
        typer.echo("interrupted: run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    if as_json:
        print_json({"dry_run": False, "results": [r.to_dict() for r in results]})
    else:
        print_table("backfill", ["table", "status", "rows", "dead letters", "chunks", "published up to (UTC)",
                                 "rows/s", "error"],
                    [(r.table, r.status, r.rows, r.dead_lettered, r.chunks, format_utc(r.committed_end),
                      r.to_dict()["rows_per_second"], r.error or "") for r in results])
    failed = [r for r in results if r.status not in ("published", "already_complete")]
    if not failed:
        return
    if stop.is_set():
        raise typer.Exit(130)
    r = failed[0]
    if r.outage:  # one sentence, exit 4, like every one-shot command; the rerun resumes
        raise OutageError(r.outage, f"backfill of {r.table} interrupted at {format_utc(r.committed_end)} UTC ({r.error}); "
                          "run the same command again to resume")
    raise typer.Exit(1)
