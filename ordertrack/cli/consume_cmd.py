"""`ordertrack consume --drain` and `ordertrack run-once`."""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import asdict
from typing import Optional

import typer

from consumers.drain import drain
from ordertrack.cli import inputs
from ordertrack.cli.output import print_json, print_table
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.log import get_logger, route_library_logs
from ordertrack.once import run_once as overlapped_run_once
from ordertrack.progress import track
from ordertrack.warehouse.factory import open_engine

log = get_logger(__name__)


def consume(
    ctx: typer.Context,
    drain_mode: bool = typer.Option(False, "--drain", help="Land everything up to the end offsets seen at start, then exit."),
    table: Optional[list[str]] = typer.Option(None, "--table", "-t", help="Only these tables (repeatable)."),
    batch_size: int = typer.Option(100_000, "--batch-size", min=1, help="Messages per landing transaction."),
    max_batch_age: str = typer.Option("15m", "--max-batch-age", help="Flush a batch whose oldest message is this old."),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", envvar="ORDERTRACK_METRICS_PORT", min=1, max=65535,
                                               help="Serve Prometheus metrics on this port."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Land micro-batches from Kafka into the warehouse raw tables, exactly once.

    Without --drain this is the long-running faust worker (stop it with SIGTERM or Ctrl-C)."""
    state = ctx.obj
    specs = inputs.tables(state.registry, table)
    if not drain_mode:
        _run_worker(state, specs, batch_size, max_batch_age, metrics_port)
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    engine = open_engine(state.config, state.settings, create="always")
    with track("consume --drain", unit="offsets") as progress:
        results = drain(state.config, state.settings, engine, specs, batch_size=batch_size, stop=stop,
                        after_landing=merge_hook(state, engine), progress=progress)
    if as_json:
        print_json([asdict(r) for r in results])
    else:
        print_table("landed", ["table", "messages", "landed", "of them deletes", "skipped (already landed)",
                               "rejected", "batches"],
                    [(r.table, r.messages, r.landed, r.deletes, r.skipped, r.rejected, r.batches) for r in results])
    raise typer.Exit(130 if stop.is_set() else 0)


def run_once(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The cron-style main job: produce one window of every table, land it, print a summary."""
    state = ctx.obj
    specs = list(state.registry)
    KafkaAdmin(state.settings.kafka).ensure_topics(pipeline_topics(state.config))
    engine = open_engine(state.config, state.settings, create="always")
    # The producer runs in a child process while this one lands what each sub-window commits;
    # Debezium publishes a binlog table's changes, so such a table is only landed.
    once = overlapped_run_once(state.config, state.settings, state.registry.polled(), specs, engine,
                               merge_hook(state, engine))
    produced, landed = once.produced, once.landed
    from marts.maintenance import archive_all

    archive_all(engine, state.registry)  # as the batch job did at the end of each run
    windows = {t.table: t for t in produced.tables}
    rows = []
    for spec in state.registry:
        t = windows.get(spec.name)
        if t is None and not spec.binlog:
            continue
        counts = [engine.query(f'SELECT COUNT(*) FROM "{schema}"."{table}"')[0][0]
                  for schema, table in ((spec.raw_schema, spec.raw_table), (spec.mart_schema, spec.mart_table))]
        rows.append({
            # Debezium publishes a binlog table's changes; run-once only lands them.
            "table": spec.name, "produce_status": t.status if t else "binlog CDC",
            "window_start": t.window_start if t else None, "window_end": t.window_end if t else None,
            "published": t.rows if t else None, "dead_lettered": t.dead_lettered if t else 0,
            "landed": landed[spec.name].landed, "rejected_at_landing": landed[spec.name].rejected,
            "raw_rows_total": counts[0], "mart_rows": counts[1], "error": t.error if t else None,
        })
    if as_json:
        print_json({"status": produced.status, "tables": rows})
    else:
        print_table(f"run-once: {produced.status}",
                    ["table", "published", "dead letters", "landed", "raw rows", "mart rows", "error"],
                    [(r["table"], r["published"], r["dead_lettered"] + r["rejected_at_landing"], r["landed"],
                      r["raw_rows_total"], r["mart_rows"], r["error"] or "") for r in rows])
    raise typer.Exit(0 if produced.status == "success" else 1)


def merge_hook(state, engine):
    """The marts merge, run inside every landing transaction (the CLI wires the stages)."""
    from marts.runner import MartRunner

    return MartRunner(state.registry, engine.dialect).after_landing


def lag(
    ctx: typer.Context,
    table: Optional[list[str]] = typer.Option(None, "--table", "-t"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per table and partition: committed messages not landed yet, and the age of the oldest one."""
    from consumers.lag import measure_lag

    state = ctx.obj
    # Where WAREHOUSE_URL names a warehouse nothing has landed in yet, everything is lag: say so.
    rows = measure_lag(state.config, state.settings, open_engine(state.config, state.settings, create="if_configured"),
                       inputs.tables(state.registry, table))
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table("landing lag", ["table", "partition", "landed up to", "end offset", "lag (messages)", "lag (minutes)"],
                [(r.table, r.partition, r.landed_up_to, r.end_offset, r.lag_messages, r.lag_minutes) for r in rows])


def _run_worker(state, specs, batch_size: int, max_batch_age: str, metrics_port: int | None) -> None:
    import faust

    from consumers.ledger import LedgerAheadError
    from consumers.worker import build_app
    from ordertrack.outage import Outage, retry_until_ok

    age = inputs.duration("--max-batch-age", max_batch_age)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    # A worker started while Kafka or the warehouse is away waits for them, as it would mid-run.
    retry_until_ok(lambda: KafkaAdmin(state.settings.kafka).ensure_topics(pipeline_topics(state.config)),
                   Outage("kafka"))
    engine = retry_until_ok(lambda: open_engine(state.config, state.settings, create="always"), Outage("warehouse"))
    app = build_app(state.config, state.settings, engine, specs, batch_size=batch_size, max_batch_age_seconds=age,
                    after_landing=merge_hook(state, engine))
    # faust's and mode's warnings and errors (a crash must never be silent) as our own events.
    # Not aiokafka's: it logs every failed reconnect as an error, many a second while Kafka is away
    # (the worker's own outage events say so once).
    route_library_logs("faust", "mode")
    worker = faust.Worker(app, loglevel="WARNING", override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if app.fatal:  # the worker stopped itself for a reason an operator must act on
            raise LedgerAheadError(app.fatal) from None
        if not app.restart_reason:
            raise
    if app.restart_reason:
        # A replay moved a landing position back: the same command again, in this process
        # (same pid for supervisors), seeks to the new positions with a fresh consumer.
        log.info("worker.restarting", reason=app.restart_reason)
        os.execv(sys.executable, [sys.executable, sys.argv[0], *sys.argv[1:]])
