"""`ordertrack produce`: publish the next window of each table to Kafka."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Optional

import orjson
import typer

from ordertrack.cli import inputs
from ordertrack.cli.output import print_table
from ordertrack.errors import ConfigError
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.log import get_logger
from ordertrack.outage import Outage, retry_until_ok
from producers.outage import OutageError
from producers.poller import StopRequested
from producers.runner import CycleResult, Producer, sleep_until_next

log = get_logger(__name__)


def _show(result: CycleResult) -> None:
    print_table(
        f"produce: {result.status}",
        ["table", "status", "rows", "dead letters", "window (UTC)", "sub-windows", "held", "error"],
        [
            (t.table, t.status, t.rows, t.dead_lettered,
             f"{d['window_start_utc']} .. {d['window_end_utc']}", t.sub_windows,
             f"{t.hold_seconds}s {t.hold_reason or ''}".strip(), t.error or "")
            for t, d in zip(result.tables, result.to_dict()["tables"].values())
        ],
    )


def produce(
    ctx: typer.Context,
    table: Optional[list[str]] = typer.Option(None, "--table", "-t", help="Only these tables (repeatable)."),
    once: bool = typer.Option(False, "--once", help="One cycle, then exit (the default without --every)."),
    every: Optional[str] = typer.Option(None, "--every", help="Run a cycle every interval (15m, 30s) until stopped."),
    start_time: Optional[str] = typer.Option(None, "--start", hidden=True,
                                             help="Replaced by `ordertrack backfill` (kept to say so)."),
    end_time: Optional[str] = typer.Option(None, "--end-time", help="Cap the live window's end: 'YYYY-mm-dd HH:MM:SS' UTC."),
    json_output: Optional[Path] = typer.Option(None, "--json-output", help="Write status and per-table counts to this file."),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", envvar="ORDERTRACK_METRICS_PORT", min=1, max=65535,
                                               help="Serve Prometheus metrics on this port."),
) -> None:
    """Publish each table's next window [watermark, end) to Kafka, with its watermark, in one transaction
    (consecutive sub-windows, one transaction each, past max_window_rows / max_window_span_minutes).
    With --every it rides through outages of the source and Kafka; a one-shot run exits 4."""
    state = ctx.obj
    if once and every:
        raise ConfigError("Give --once or --every, not both.")
    if start_time is not None:
        # A bounded window of the past once ran here, under the live producer's transactional id;
        # it is a backfill now, with its own id, chunks and resume.
        raise ConfigError("produce --start was replaced by `ordertrack backfill --table T --from S --to E`, which "
                          "publishes a past period beside the live producer and never moves the live watermark.")
    interval = inputs.duration("--every", every) if every else None
    end = inputs.utc_time("--end-time", end_time) if end_time else None
    specs = inputs.polled_tables(state.registry, table)
    if not specs:
        raise ConfigError("Every table has cdc_strategy: debezium, so the poller has nothing to publish; Debezium "
                          "carries them (`ordertrack connectors status`).")
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    stop = threading.Event()
    # SIGTERM (a scheduler stopping us) and Ctrl-C both end the open window by aborting it.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ensure = lambda: KafkaAdmin(state.settings.kafka).ensure_topics(pipeline_topics(state.config))  # noqa: E731
    if interval is None:
        ensure()
    else:  # the long-running loop started while Kafka is away waits for it, as it would mid-run
        retry_until_ok(ensure, Outage("kafka"), stop)
    exit_code = 0
    with Producer(state.config, state.settings, specs, stop) as producer:
        while True:
            began = time.monotonic()
            try:
                # --every waits out an outage (backoff, one warning, one info); a one-shot run stops.
                result = (producer.ride_out(end=end) if interval is not None else producer.cycle(end=end))
            except KeyboardInterrupt:
                stop.set()
                raise StopRequested("interrupted; the open window was aborted and will be redone") from None
            except OutageError as exc:
                if exc.result is not None:
                    _write_json(json_output, exc.result)
                    _show(exc.result)
                raise
            _write_json(json_output, result)
            _show(result)
            exit_code = 0 if result.status == "success" else 1
            if interval is None or stop.is_set():
                break
            try:
                sleep_until_next(interval, began, stop)
            except KeyboardInterrupt:
                break
            if stop.is_set():
                break
    raise typer.Exit(exit_code)


def _write_json(path: Path | None, result: CycleResult) -> None:
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
    tmp.replace(path)
