"""A produce cycle: every selected table publishes its next window, up to N tables at once.

Order of a cycle, and why:
1. open every table's poller (again, after an outage dropped its connection or producer):
   `init_transactions` aborts whatever a crashed run left open, which would otherwise hide newer
   watermarks from read_committed readers;
2. measure the clock drift once and refuse to run past the limit;
3. read the committed watermarks;
4. run the windows in parallel; a failing table is reported and does not stop the others.

A service that goes away (the source, Kafka) ends the cycle with `OutageError` once every table is
done: tables it did not touch have committed. `--once` stops there (exit 4); `ride_out`, the
long-running loop's cycle, backs off and runs the cycle again until it goes through.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Literal

from tenacity import Retrying, retry_if_exception_type, sleep_using_event, stop_when_event_set, wait_exponential

from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError, SecurityError, ServiceUnavailableError, TransientError
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc
from ordertrack.watermarks.kafka_store import KafkaWatermarkStore
from producers import metrics
from producers.outage import OutageError, OutageWatch, as_outage, store_outage
from producers.poller import ClockDriftError, StopRequested, TablePoller, WindowResult

log = get_logger(__name__)

CycleStatus = Literal["success", "partial", "failed"]


@dataclass
class CycleResult:
    status: CycleStatus
    started_at: str
    finished_at: str
    clock_drift_seconds: float
    tables: list[WindowResult] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def outages(self) -> list[WindowResult]:
        """Tables whose window a service outage interrupted."""
        return [t for t in self.tables if t.outage]

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "clock_drift_seconds": round(self.clock_drift_seconds, 3),
            "total_rows": self.total_rows,
            "tables": {
                t.table: {
                    **{k: v for k, v in asdict(t).items() if k not in ("table", "partition_end_offsets")},
                    "window_start_utc": format_utc(t.window_start),
                    "window_end_utc": format_utc(t.window_end),
                }
                for t in self.tables
            },
        }


def watermark_store(config: PipelineConfig, settings: Settings) -> KafkaWatermarkStore:
    return KafkaWatermarkStore(
        settings.kafka,
        config.kafka.watermark_topic,
        wait_seconds=config.kafka.transaction_timeout_seconds + 30,
        client_id=config.pipeline.name,
    )


def check_drift(drift: float, limit: int, db_now: int) -> None:
    metrics.CLOCK_DRIFT.set(drift)
    if abs(drift) > limit:
        ours = db_now - drift
        raise ClockDriftError(
            f"The source database's clock ({format_utc(db_now)} UTC) and this worker's clock "
            f"({format_utc(ours)} UTC) differ by {abs(drift):.0f}s, over the limit of {limit}s "
            f"(processing.max_clock_drift_seconds): fix the time sync of one of them."
        )


class Producer:
    """Pollers kept open across cycles (`--every`), so transactions are initialised once; a poller
    that lost its connection or producer in an outage opens a new one at the next cycle."""

    def __init__(self, config: PipelineConfig, settings: Settings, specs: list[TableSpec],
                 stop: threading.Event | None = None, *, max_backoff_seconds: float = 60.0) -> None:
        self.config = config
        self.settings = settings
        self.stop = stop or threading.Event()
        self.pollers = [TablePoller(s, config, settings, stop=self.stop) for s in specs]
        self.store = watermark_store(config, settings)
        self.watch = OutageWatch()
        self.max_backoff_seconds = max_backoff_seconds

    def __enter__(self) -> "Producer":
        # Pollers open in the first cycle, so a long-running loop started during an outage waits
        # it out like any other.
        return self

    def __exit__(self, *exc) -> None:
        for p in self.pollers:
            p.close()

    def cycle(self, *, end: int | None = None) -> CycleResult:
        """One live window of every table, ending at `end` at the latest. Raises OutageError when a
        service was away. (A bounded window of the past is a backfill: `producers.backfill`.)"""
        started = datetime.now(timezone.utc).isoformat()
        for p in self.pollers:
            p.open()
        db_now, drift = self.pollers[0].measure_clock()
        check_drift(drift, self.config.processing.max_clock_drift_seconds, db_now)
        try:
            marks = self.store.latest()
        except SecurityError:
            raise
        except (ServiceUnavailableError, TransientError) as exc:
            raise store_outage(exc) from None
        except Exception as exc:
            outage = as_outage(exc, "reading the watermarks")
            if outage is None:
                raise
            raise outage from None
        self._check_bounds(marks, db_now, end)
        pool = ThreadPoolExecutor(max_workers=self.config.processing.max_parallel_tables, thread_name_prefix="poller")
        try:
            futures = [pool.submit(p.run_window, marks.get(p.spec.name), end_override=end) for p in self.pollers]
            results = [f.result() for f in futures]
        except BaseException:
            # Ctrl-C or a stop in one table: the others abort their open windows instead of committing.
            self.stop.set()
            raise
        finally:
            pool.shutdown(wait=True)
        failed = sum(r.status == "failed" for r in results)
        status: CycleStatus = "success" if not failed else ("failed" if failed == len(results) else "partial")
        result = CycleResult(status, started, datetime.now(timezone.utc).isoformat(), drift, results)
        if result.outages:
            first = result.outages[0]
            assert first.outage is not None  # `outages` keeps only windows with one
            raise OutageError(first.outage, first.error or f"{first.outage} went away", result)
        return result

    def _check_bounds(self, marks: dict, db_now: int, end: int | None) -> None:
        """Refuse an `--end-time` that leaves a table nothing to publish: a window planned up to it
        would be empty, with a hold that is nonsense (negative). Raises ConfigError."""
        if end is None:
            return
        w = self.config.window_settings
        for p in self.pollers:
            wm = marks.get(p.spec.name)
            first = wm.position if wm is not None else db_now - w.lookback_minutes * 60
            if end < first:
                where = (f"the watermark of {p.spec.name} ({format_utc(first)} UTC)" if wm is not None else
                         f"the first window of {p.spec.name} ({format_utc(first)} UTC, lookback_minutes ago)")
                raise ConfigError(
                    f"--end-time {format_utc(end)} is before {where}: nothing is left to publish up to it; "
                    f"to publish that period again, backfill it: `ordertrack backfill --table {p.spec.name} "
                    "--from ... --to ...`.")

    def ride_out(self, *, end: int | None = None) -> CycleResult:
        """`cycle`, run again with backoff while a service is away, until one goes through: the
        long-running loop's cycle. Says once when an outage starts and once when it ends (and keeps
        the `ordertrack_producer_service_up` gauge). A stop request while waiting raises
        StopRequested."""
        retrying = Retrying(
            retry=retry_if_exception_type(OutageError),
            wait=wait_exponential(multiplier=1, min=1, max=self.max_backoff_seconds),
            stop=stop_when_event_set(self.stop),
            sleep=sleep_using_event(self.stop),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if self.stop.is_set():
                        raise StopRequested("stopped while waiting for a service to come back")
                    try:
                        result = self.cycle(end=end)
                    except OutageError as exc:
                        self.watch.failed(exc.service, str(exc))
                        raise
        except OutageError:
            raise StopRequested("stopped while waiting for a service to come back") from None
        self.watch.all_up()
        return result


def sleep_until_next(every: float, started: float, stop: threading.Event) -> None:
    """Wait for the next slot of `every` seconds after `started`; wakes early on stop."""
    remaining = every - (time.monotonic() - started)
    if remaining > 0:
        stop.wait(remaining)
