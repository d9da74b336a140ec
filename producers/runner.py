"""A produce cycle: every selected table publishes its next window, up to N tables at once.

Order of a cycle, and why:
1. open every table's poller: `init_transactions` aborts whatever a crashed run left open, which
   would otherwise hide newer watermarks from read_committed readers;
2. measure the clock drift once and refuse to run past the limit;
3. read the committed watermarks;
4. run the windows in parallel; a failing table is reported and does not stop the others.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Literal

from ordertrack.config import PipelineConfig
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc
from ordertrack.watermarks.kafka_store import KafkaWatermarkStore
from producers import metrics
from producers.poller import ClockDriftError, TablePoller, WindowResult

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
        settings.kafka.bootstrap_servers,
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
    """Pollers kept open across cycles (`--every`), so transactions are initialised once."""

    def __init__(self, config: PipelineConfig, settings: Settings, specs: list[TableSpec],
                 stop: threading.Event | None = None) -> None:
        self.config = config
        self.settings = settings
        self.stop = stop or threading.Event()
        self.pollers = [TablePoller(s, config, settings, stop=self.stop) for s in specs]
        self.store = watermark_store(config, settings)

    def __enter__(self) -> "Producer":
        opened = []
        try:
            for p in self.pollers:
                p.open()
                opened.append(p)
        except BaseException:
            for p in opened:
                p.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for p in self.pollers:
            p.close()

    def cycle(self, *, start: int | None = None, end: int | None = None) -> CycleResult:
        started = datetime.now(timezone.utc).isoformat()
        clock, drift = self.pollers[0].measure_clock()
        check_drift(drift, self.config.processing.max_clock_drift_seconds, clock.db_now)
        marks = self.store.latest()
        pool = ThreadPoolExecutor(max_workers=self.config.processing.max_parallel_tables, thread_name_prefix="poller")
        try:
            futures = [
                pool.submit(p.run_window, marks.get(p.spec.name), start_override=start, end_override=end)
                for p in self.pollers
            ]
            results = [f.result() for f in futures]
        except BaseException:
            # Ctrl-C or a stop in one table: the others abort their open windows instead of committing.
            self.stop.set()
            raise
        finally:
            pool.shutdown(wait=True)
        failed = sum(r.status == "failed" for r in results)
        status: CycleStatus = "success" if not failed else ("failed" if failed == len(results) else "partial")
        return CycleResult(status, started, datetime.now(timezone.utc).isoformat(), drift, results)


def sleep_until_next(every: float, started: float, stop: threading.Event) -> None:
    """Wait for the next slot of `every` seconds after `started`; wakes early on stop."""
    remaining = every - (time.monotonic() - started)
    if remaining > 0:
        stop.wait(remaining)
