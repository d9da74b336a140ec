"""One produce-and-land cycle (`run-once`), the two hops overlapping in two processes.

The producer commits each sub-window in its own Kafka transaction (`producers.poller`), so the
landing can take a committed sub-window while the next is still being read from the source.
Both hops are Python work per row; in one process they would take turns on one interpreter
lock, so the producer runs in a child process and this process lands, one drain pass after
another, until the child has finished and the landing has reached every offset it published.

Nothing about exactly-once changes: the landing reads committed messages only and skips
offsets the ledger already holds, whichever pass reads them.

The child is the parent's for its whole life: it is spawned (not forked: the parent holds
Kafka clients and their threads), it gets SIGINT when the parent dies however it dies (so a
killed `run-once` never leaves a producer committing windows nobody lands), and the parent
interrupts it when the landing fails. An interrupted producer aborts its open transaction:
nothing half-published becomes visible.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from consumers.drain import TableDrain, drain
from consumers.lander import Lander
from ordertrack.config import PipelineConfig
from ordertrack.errors import OrdertrackError, as_service_error, without_secrets
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import AfterLanding, WarehouseEngine
from producers.runner import CycleResult

log = get_logger(__name__)

R = TypeVar("R")

PAUSE_SECONDS = (0.2, 2.0)
"""Between two drain passes that found nothing new while the producer runs: from the first
figure, doubling up to the second (a pass costs a consumer and a ledger read)."""

CATCH_UP_SECONDS = 60.0
"""How long the last passes wait for offsets the producer committed to become readable: Kafka
answers a commit before every partition's commit marker is written."""

Published = dict[str, dict[int, int]]
"""topic -> partition -> the offset after the last record the producer committed there."""


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


def cycle_ends(specs: list[TableSpec]) -> Callable[[CycleResult], Published]:
    topics = {s.name: s.topic for s in specs}
    return lambda result: {topics[t.table]: dict(t.partition_end_offsets) for t in result.tables if t.table in topics}


def run_once(config: PipelineConfig, settings: Settings, polled: list[TableSpec], landed: list[TableSpec],
             engine: WarehouseEngine, after_landing: AfterLanding | None) -> OnceResult[CycleResult]:
    """Produce one window of every `polled` table in a child process while landing every table of
    `landed` here; return when the window is committed and all of it has landed. The child's
    exception (an outage, a clock drift) is raised here after the landing has caught up."""
    if not polled:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        lander = Overlap(config, settings, landed, engine, after_landing)
        lander.land_pass()
        return OnceResult(CycleResult("success", now, now, 0.0), lander.totals, lander.passes)
    return land_while(produce_cycle, (config, settings, polled), config, settings, landed, engine, after_landing,
                      published=cycle_ends(polled))


def land_while(produce: Callable[..., R], args: tuple, config: PipelineConfig, settings: Settings,
               landed: list[TableSpec], engine: WarehouseEngine, after_landing: AfterLanding | None, *,
               published: Callable[[R], Published] | None = None) -> OnceResult[R]:
    """Run `produce(*args)` (a top-level function: it runs in a child process) and land every
    table of `landed` here while it runs, then until every offset `published(its result)` names
    has landed (or one last pass, without `published`). A backfill of a period
    (`producers.backfill.publish_period`) overlaps with its landing the same way."""
    overlap = Overlap(config, settings, landed, engine, after_landing)
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(sender, os.getpid(), produce, args), name="ordertrack-producer")
    child.start()
    sender.close()
    try:
        pause = PAUSE_SECONDS[0]
        while not receiver.poll():
            if overlap.land_pass():
                pause = PAUSE_SECONDS[0]
            else:  # nothing committed since the last pass: wait a little, or for the producer's end
                receiver.poll(pause)
                pause = min(pause * 2, PAUSE_SECONDS[1])
    except BaseException as exc:
        if not isinstance(exc, KeyboardInterrupt):
            log.error("run_once.landing.failed", error=without_secrets(f"{type(exc).__name__}: {exc}"),
                      action="stopping the producer; what it committed lands on the next run")
        _interrupt(child)
        raise
    ok, value = _outcome(receiver, child)
    try:
        overlap.catch_up(published(value) if ok and published is not None else None)
    except Exception as exc:
        if ok:
            raise
        log.error("run_once.landing.failed", error=without_secrets(f"{type(exc).__name__}: {exc}"),
                  action="reporting the producer's failure, which came first")
    if not ok:
        raise value
    return OnceResult(value, overlap.totals, overlap.passes)


class Overlap:
    """The landing side: one lander (one dead-letter producer) for every pass, tables created once."""

    def __init__(self, config: PipelineConfig, settings: Settings, specs: list[TableSpec], engine: WarehouseEngine,
                 after_landing: AfterLanding | None) -> None:
        self.config, self.settings, self.specs, self.engine = config, settings, specs, engine
        self.after_landing = after_landing
        self.lander = Lander(engine, config, settings, after_landing)
        self.totals = {s.name: TableDrain(s.name) for s in specs}
        self.passes = 0
        for spec in specs:
            self.totals[spec.name].added_columns += self.lander.ensure_table(spec)

    def land_pass(self) -> int:
        """Land what is committed now; return the number of messages read."""
        self.passes += 1
        moved = 0
        for r in drain(self.config, self.settings, self.engine, self.specs, after_landing=self.after_landing,
                       lander=self.lander, ensure_tables=False):
            t = self.totals[r.table]
            for name in ("messages", "landed", "skipped", "rejected", "deletes", "batches"):
                setattr(t, name, getattr(t, name) + getattr(r, name))
            t.added_columns += r.added_columns
            moved += r.messages
        return moved

    def catch_up(self, published: Published | None) -> None:
        """Passes until every offset in `published` has landed (one pass without it); after
        CATCH_UP_SECONDS the rest is left to the next run, with a warning."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while True:
            self.land_pass()
            behind = self._behind(published or {})
            if not behind:
                return
            if time.monotonic() > deadline:
                log.warning("run_once.landing.behind", partitions=behind,
                            hint="Kafka has not made them readable yet; the next run or `consume --drain` lands them")
                return
            time.sleep(PAUSE_SECONDS[0])

    def _behind(self, published: Published) -> dict[str, dict[int, int]]:
        behind: dict[str, dict[int, int]] = {}
        for topic, ends in published.items():
            landed = self.engine.next_offsets(topic)
            late = {p: end for p, end in ends.items() if landed.get(p, 0) < end}
            if late:
                behind[topic] = late
        return behind


def _child(sender: Connection, parent: int, produce: Callable[..., Any], args: tuple) -> None:
    """The producer's process: dies with its parent, logs as the parent does, sends back its
    result or its exception (in a form that survives the trip)."""
    from ordertrack.log import configure_logging

    _die_with(parent)
    configure_logging()
    try:
        outcome: tuple[bool, Any] = (True, produce(*args))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        outcome = (False, _portable(exc))
    try:
        sender.send(outcome)
    finally:
        sender.close()


def _portable(exc: BaseException) -> BaseException:
    """`exc` as the parent can raise it: a lost or refused service as its one sentence (exit 4),
    anything else as it is when it pickles, else its type and text (an internal error, exit 70)."""
    if not isinstance(exc, OrdertrackError):
        service = as_service_error(exc)
        if service is not None:
            return service
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(without_secrets(f"{type(exc).__name__}: {exc}"))


def _die_with(parent: int) -> None:
    """SIGINT this process when its parent dies (Linux); the producer then aborts its window."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's own handling is all there is
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGINT)


def _interrupt(child: multiprocessing.process.BaseProcess) -> None:
    """Ask the producer to stop (it aborts its open transaction), then wait for it."""
    if child.is_alive() and child.pid is not None:
        try:
            os.kill(child.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()


def _outcome(receiver: Connection, child: multiprocessing.process.BaseProcess) -> tuple[bool, Any]:
    try:
        ok, value = receiver.recv()
    except EOFError:
        child.join()
        return False, OrdertrackError(
            f"The producer's process ended without a result (exit code {child.exitcode}); its log is above.")
    child.join()
    return ok, value
