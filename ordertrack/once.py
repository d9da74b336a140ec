"""One produce-and-land cycle (`run-once`), the two hops overlapping in two processes.

The producer commits each sub-window in its own Kafka transaction (`producers.poller`), so the
landing can take a committed sub-window while the next is still being read from the source.
Both hops are Python work per row; in one process they would take turns on one interpreter
lock, so the producer runs in a child process and this process lands, one drain pass after
another, until the child has finished and a last pass has landed everything it committed.

Nothing about exactly-once changes: the landing reads committed messages only and skips
offsets the ledger already holds, whichever pass reads them.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

from consumers.drain import TableDrain, drain
from consumers.lander import Lander
from ordertrack.config import PipelineConfig
from ordertrack.errors import OrdertrackError
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import AfterLanding, WarehouseEngine
from producers.runner import CycleResult

PASS_PAUSE_SECONDS = 0.2
"""Between two drain passes that found nothing new, while the producer is still running."""


R = TypeVar("R")


@dataclass
class OnceResult(Generic[R]):
    produced: R
    landed: dict[str, TableDrain]
    passes: int


def produce_cycle(config: PipelineConfig, settings: Settings, specs: list[TableSpec]) -> CycleResult:
    """One window of every table in `specs` (runs in the child process)."""
    from producers.runner import Producer

    with Producer(config, settings, specs) as producer:
        return producer.cycle()


def run_once(config: PipelineConfig, settings: Settings, polled: list[TableSpec], landed: list[TableSpec],
             engine: WarehouseEngine, after_landing: AfterLanding | None, *,
             stop: threading.Event | None = None) -> OnceResult[CycleResult]:
    """Produce one window of every `polled` table in a child process while landing every table of
    `landed` here; return when the window is committed and all of it has landed. The child's
    exception (an outage, a clock drift) is raised here after the landing has caught up."""
    if not polled:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        return land_while(lambda: CycleResult("success", now, now, 0.0), (), config, settings, landed, engine,
                          after_landing, stop=stop, in_child=False)
    return land_while(produce_cycle, (config, settings, polled), config, settings, landed, engine, after_landing,
                      stop=stop)


def land_while(produce: Callable[..., R], args: tuple, config: PipelineConfig, settings: Settings,
               landed: list[TableSpec], engine: WarehouseEngine, after_landing: AfterLanding | None, *,
               stop: threading.Event | None = None, in_child: bool = True) -> OnceResult[R]:
    """Run `produce(*args)` (a top-level function: it runs in a child process) and land every
    table of `landed` here while it runs, then once more after it: a backfill of a period
    (`producers.backfill.publish_period`) overlaps with its landing the same way."""
    stop = stop or threading.Event()
    totals = {s.name: TableDrain(s.name) for s in landed}
    passes = 0
    lander = Lander(engine, config, settings, after_landing)

    def land_pass() -> int:
        nonlocal passes
        passes += 1
        moved = 0
        for r in drain(config, settings, engine, landed, after_landing=after_landing, stop=stop, lander=lander):
            t = totals[r.table]
            for name in ("messages", "landed", "skipped", "rejected", "deletes", "batches"):
                setattr(t, name, getattr(t, name) + getattr(r, name))
            t.added_columns += r.added_columns
            moved += r.messages
        return moved

    if not in_child:
        value = produce(*args)
        land_pass()
        return OnceResult(value, totals, passes)
    # spawn, not fork: this process already holds Kafka clients and their threads.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        produced: Future[R] = pool.submit(_portable, produce, *args)
        while not produced.done() and not stop.is_set():
            if not land_pass():  # nothing committed since the last pass: wait a little, or for the end
                wait([produced], timeout=PASS_PAUSE_SECONDS)
        failure = produced.exception()
    land_pass()  # what the last sub-windows committed
    if failure is not None:
        raise failure
    return OnceResult(produced.result(), totals, passes)


def _portable(produce: Callable[..., R], *args: object) -> R:
    """`produce(*args)` in the child, logging as the parent does; an exception that would not
    survive the trip back to the parent is turned into one that does."""
    from ordertrack.log import configure_logging

    configure_logging()
    try:
        return produce(*args)
    except BaseException as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise OrdertrackError(f"{type(exc).__name__}: {exc}") from None
        raise
