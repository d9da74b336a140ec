"""`ordertrack backfill`: re-publish a period of a table from the source, beside the live producer.

Why this shape:

* **Same topic, its own transactional id** (`<pipeline>.backfill.<table>`, see
  `producers.poller.producer_config`). The backfill and the live producer never fence each other,
  and every version of a key stays on its partition: a re-published version lands after the live
  one in offset order, so on equal cursors the later read wins (newer wins, promise 4), and the
  worker lands both without knowing which wrote what. While a backfill chunk's transaction is open,
  read_committed consumers wait for it (a chunk is bounded: `--chunk`, `max_window_rows`).
* **Chunks.** The period is cut into chunks of `--chunk` (1h); each is a bounded window, itself cut
  into sub-windows past `max_window_rows`, each sub-window one Kafka transaction with its own record
  in the watermark topic: status `backfill`, keyed `<table>.backfill.<run id>`, carrying the run's
  period. The live watermark never moves.
* **Resume.** The newest record of an unfinished run of the same table and period says where its
  last committed chunk ended; running the same command again goes on from there (`--restart`
  starts over). A killed run's open transaction is aborted by the next run's `init_transactions`.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError
from ordertrack.log import get_logger
from ordertrack.progress import Progress
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc
from ordertrack.watermarks.model import Watermark
from producers.outage import OutageError, Service
from producers.poller import StopRequested, TablePoller
from producers.runner import check_drift
from producers.window import BackfillRun

log = get_logger(__name__)


@dataclass
class BackfillPlan:
    table: str
    run: BackfillRun
    chunk_seconds: int
    resume_from: int
    """Where publishing starts: the run's start, or the end of an interrupted run's last commit."""
    resumed: bool
    already_complete: bool = False
    source_rows: int | None = None
    """Rows in the source with a cursor in [resume_from, end) when planned (an estimate: rows move)."""

    @property
    def chunks(self) -> list[tuple[int, int]]:
        out, a = [], self.resume_from
        while a < self.run.end:
            b = min(a + self.chunk_seconds, self.run.end)
            out.append((a, b))
            a = b
        return out

    def to_dict(self) -> dict:
        return {"table": self.table, "run_id": self.run.run_id, "from": format_utc(self.run.start),
                "to": format_utc(self.run.end), "chunk_seconds": self.chunk_seconds,
                "resume_from": format_utc(self.resume_from), "resumed": self.resumed,
                "already_complete": self.already_complete, "chunks": len(self.chunks),
                "source_rows": self.source_rows}


@dataclass
class BackfillResult:
    table: str
    run_id: str
    status: str
    """published, already_complete, interrupted (an outage or a stop: run the command again), failed."""
    start: int
    end: int
    resumed_from: int
    committed_end: int
    rows: int = 0
    dead_lettered: int = 0
    chunks: int = 0
    sub_windows: int = 0
    seconds: float = 0.0
    error: str | None = None
    outage: Service | None = None
    """The service whose outage interrupted the run, if one did."""
    held: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update({"from": format_utc(self.start), "to": format_utc(self.end),
                  "resumed_from": format_utc(self.resumed_from), "committed_end": format_utc(self.committed_end),
                  "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None})
        return d


def runs_of(marks: list[Watermark], table: str) -> dict[str, Watermark]:
    """The newest record of each backfill run of `table` (records oldest first)."""
    out: dict[str, Watermark] = {}
    for m in marks:
        if m.status == "backfill" and m.table == table and m.run_id:
            out[m.run_id] = m
    return out


def plan_backfill(marks: list[Watermark], spec: TableSpec, start: int, end: int, chunk_seconds: int,
                  *, restart: bool = False) -> BackfillPlan:
    """The run to do: an unfinished run of the same period goes on where it stopped (unless
    `restart`); a finished one is reported as such; otherwise a new run."""
    if start >= end:
        raise ConfigError(f"--from {format_utc(start)} is not before --to {format_utc(end)}.")
    if chunk_seconds <= 0:
        raise ConfigError("--chunk must be positive.")
    same = sorted((m for m in runs_of(marks, spec.name).values()
                   if (m.run_start, m.run_end) == (start, end)), key=lambda m: m.written_at)
    if same and not restart:
        last = same[-1]
        assert last.run_id is not None  # runs_of keeps only records with a run id
        run = BackfillRun(last.run_id, start, end)
        if last.position >= end:
            return BackfillPlan(spec.name, run, chunk_seconds, end, resumed=False, already_complete=True)
        return BackfillPlan(spec.name, run, chunk_seconds, last.position, resumed=True)
    return BackfillPlan(spec.name, BackfillRun(uuid.uuid4().hex[:12], start, end), chunk_seconds, start, resumed=False)


def run_backfill(config: PipelineConfig, settings: Settings, spec: TableSpec, plan: BackfillPlan, *,
                 stop: threading.Event | None = None, progress: Progress | None = None) -> BackfillResult:
    """Publish the plan's chunks in order. Returns with status `interrupted` (and where it got to)
    when a service went away or a stop was requested: the command run again resumes there."""
    stop = stop or threading.Event()
    run = plan.run
    result = BackfillResult(spec.name, run.run_id, "published", run.start, run.end, plan.resume_from, plan.resume_from)
    if plan.already_complete:
        result.status = "already_complete"
        return result
    began = time.monotonic()
    poller = TablePoller(spec, config, settings, stop=stop, backfill_run=run)
    try:
        db_now, drift = poller.measure_clock()
        check_drift(drift, config.processing.max_clock_drift_seconds, db_now)
        newest = db_now - config.window_settings.buffer_minutes * 60
        if run.start >= newest:
            raise ConfigError(
                f"--from {format_utc(run.start)} is not before {format_utc(newest)} UTC, the newest time the source "
                f"can be published up to now (its clock minus the {config.window_settings.buffer_minutes}-minute "
                "buffer).")
        log.info("backfill.started", table=spec.name, run_id=run.run_id, start=format_utc(run.start),
                 end=format_utc(run.end), resume_from=format_utc(plan.resume_from), chunks=len(plan.chunks))
        pos = plan.resume_from
        while pos < run.end and not stop.is_set():
            chunk_end = min(pos + plan.chunk_seconds, run.end)
            w = poller.run_window(None, start_override=pos, end_override=chunk_end)
            result.rows += w.rows
            result.dead_lettered += w.dead_lettered
            result.sub_windows += w.sub_windows
            if w.committed_end is not None:
                result.committed_end = pos = w.committed_end
            if w.status == "failed":
                result.status = "interrupted" if w.outage else "failed"
                result.error, result.outage = w.error, w.outage
                break
            if w.status == "empty":
                # Nothing may be published past the source's clock minus the buffer (or an open
                # transaction's start, held for): the rest is for a later run, or the live windows.
                result.status = "interrupted"
                result.error = (f"stopped at {format_utc(pos)} UTC: the rest of the period is newer than the source "
                                "may be published up to now (its clock minus the buffer, or an open transaction)")
                break
            if w.hold_reason and w.committed_end is not None and w.committed_end < chunk_end:
                result.held.append(f"{format_utc(w.committed_end)}: {w.hold_reason}")
            result.chunks += 1
            if progress is not None:
                progress.advance(w.rows, chunks=f"{result.chunks}/{len(plan.chunks)}",
                                 at=format_utc(pos))
            log.info("backfill.chunk.committed", table=spec.name, run_id=run.run_id, rows=w.rows,
                     dead_lettered=w.dead_lettered, committed_end=format_utc(pos), sub_windows=w.sub_windows)
        if stop.is_set() and pos < run.end and result.status == "published":
            result.status, result.error = "interrupted", "stopped; run the same command again to resume"
    except OutageError as exc:
        result.status, result.error, result.outage = "interrupted", str(exc), exc.service
    except StopRequested as exc:  # SIGTERM or Ctrl-C mid-chunk: that chunk was aborted
        result.status, result.error = "interrupted", f"{exc}; run the same command again to resume"
    finally:
        poller.close()
        result.seconds = round(time.monotonic() - began, 3)
    log.info("backfill.finished", **{k: v for k, v in result.to_dict().items() if k != "held"})
    return result


def source_rows(settings: Settings, spec: TableSpec, start: int, end: int, query_timeout: int) -> int:
    """Rows in the source with a cursor in [start, end): the backfill's size, for the plan and the ETA."""
    from ordertrack.identifiers import quote_mysql
    from ordertrack.source.connection import connect, one_row

    conn = connect(settings.mysql, read_timeout=query_timeout)
    try:
        with conn.cursor() as cur:
            table = f"{quote_mysql(spec.database)}.{quote_mysql(spec.name)}"
            cur.execute(f"SELECT COUNT(*) FROM {table} "
                        f"WHERE {quote_mysql(spec.cursor_column)} >= %s AND {quote_mysql(spec.cursor_column)} < %s",
                        (start, end))
            return int(one_row(cur)[0])
    finally:
        conn.close()


def publish_period(config: PipelineConfig, settings: Settings, spec: TableSpec, start: int, end: int, *,
                   chunk_seconds: int | None = None, stop: threading.Event | None = None) -> BackfillResult:
    """A new backfill run of [start, end), published at once (tools, tests and benchmarks that need
    a past period on the topic without planning or resuming)."""
    plan = BackfillPlan(spec.name, BackfillRun(uuid.uuid4().hex[:12], start, end), chunk_seconds or end - start,
                        start, resumed=False)
    return run_backfill(config, settings, spec, plan, stop=stop)


def unfinished_runs(marks: list[Watermark]) -> list[Watermark]:
    """The newest record of every backfill run (records oldest first) that has not reached its
    end: running now, or interrupted and waiting for the same command again. A run another run of
    the same table and period followed (`--restart`) is over."""
    newest: dict[tuple[str, int | None, int | None], Watermark] = {}
    for m in marks:
        if m.status == "backfill" and m.run_id:
            newest[(m.table, m.run_start, m.run_end)] = m
    return [m for m in newest.values() if m.run_end is not None and m.position < m.run_end]
