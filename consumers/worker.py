"""The long-running landing worker: a faust-streaming app, one agent per table topic.

Two departures from faust's defaults, both deliberate:

* **read_committed.** faust's aiokafka driver builds its consumer with `read_uncommitted` unless
  the app runs `processing_guarantee="exactly_once"`, which would also move offset commits into
  producer transactions. We need neither: rows of an aborted producer transaction must never
  land, so the consumer thread below asks for `read_committed` directly.
* **The ledger decides where to read.** faust seeks assigned partitions to the group's committed
  offsets; here "committed" means the warehouse ledger's next offset. faust acks and commits
  buffered events on its own schedule (its `take()` even acks a failed batch in a `finally`),
  so its commits can run ahead of what landed; seeking to the ledger makes that harmless, and
  the engine skips anything already landed.

* **A replay moves the position back: the worker starts over.** Each landing says where this
  worker reads on from (`expected`); a replay (`ordertrack replay`) that has moved the warehouse's
  position below it since makes the landing fail with nothing committed (`LedgerRewound`), checked
  inside the landing transaction, so the two cannot race. The worker then stops and restarts its
  own process image (same pid), which seeks to the new positions: simpler and surer than seeking a
  running faust consumer while fetched messages of the old position are still queued.

* **A batch is kept until it has landed.** A landing that fails (the warehouse file held by
  another process, the warehouse or the source unreachable, Kafka refusing the dead letters)
  leaves the ledger where it was; the worker keeps the messages, says once what it waits for,
  retries with backoff for as long as it takes, and lands them before anything later.

A table's batch flushes when the stream has caught up (the last fetch brought less than a full
chunk: the committed window has been read), at `batch_size`, or when the oldest buffered message
is `max_batch_age_seconds` old, whichever comes first. This needs nothing but the table's own
partitions, so it holds after a restart and whatever the number of workers in the group.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from consumers import metrics
from consumers.lag import measure_lag
from consumers.lander import Lander
from consumers.ledger import LedgerAheadError, check_ledger_within_log
from consumers.staging import RawMessage, header, last_offsets
from ordertrack.config import PipelineConfig
from ordertrack.errors import SecurityError
from ordertrack.kafka.admin import KafkaAdmin
from ordertrack.kafka.security import faust_credentials
from ordertrack.log import get_logger
from ordertrack.outage import Outage
from ordertrack.settings import Settings
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.warehouse.engine import AfterLanding, WarehouseEngine
from ordertrack.warehouse.positions import LedgerRewound, check_not_rewound

log = get_logger(__name__)

T = TypeVar("T")

IDLE_SECONDS = 2.0
"""A table whose stream brought nothing for this long has read all that is committed."""
REWIND_CHECK_SECONDS = 10.0
"""How often an idle worker looks for a replay that moved its positions back."""


class _LedgerConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001 - faust's signature
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts; faust sets it only under exactly_once.
        consumer._isolation_level = "read_committed"
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = dict(await super().seek_to_committed())
        app = cast("LandingApp", self.consumer.app)  # faust types it AppT; `LandingApp` builds this consumer
        try:
            # In a thread, so this consumer's heartbeats go on while the warehouse answers (or
            # while it is waited for: an unreachable warehouse must not cost the group membership).
            tps = set(self.assignment())
            ledger = await _until_ok(lambda: app.ledger_positions(tps), app.ledger_outage,
                                     fatal=(LedgerAheadError, LedgerRewound, SecurityError))
        except LedgerAheadError as exc:
            app.fatal = str(exc)
            log.error("worker.ledger_ahead_of_topic", error=str(exc))
            await app.crash(exc)
            return committed
        except LedgerRewound as exc:
            # Seeking back here would leave what this worker fetched and buffered from the old
            # position to be landed after the new one: start over instead.
            app.restart_for(exc)
            return committed
        for tp, offset in ledger.items():
            self.seek(tp, offset)
        committed.update(ledger)
        return committed


class _LedgerConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _LedgerConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _LedgerTransport(faust_aiokafka.Transport):
    Consumer = _LedgerConsumer


class LandingApp(faust.App):
    """A faust app whose consumer reads read_committed from the ledger's positions."""

    engine: WarehouseEngine
    registry: TableRegistry
    settings: Settings
    fatal: str | None = None
    """Why the worker stopped itself (the CLI turns it into one sentence and exit code)."""
    restart_reason: str | None = None
    """Why the worker stopped to start again (a replay moved a landing position back)."""
    read_from: dict[tuple[str, int], int]
    """(topic, partition) -> the offset this worker reads on from: its seek position, then the
    offset after its last landed batch; sent with every landing (`expected`). Kept when a
    partition is revoked: buffered messages of it may still land, and must still be checked; a
    seek that would move it back restarts the worker instead."""
    ledger_outage: Outage

    def _new_transport(self):  # noqa: ANN202 - faust's signature
        return _LedgerTransport(self.conf.broker_consumer, self, loop=self.loop)

    def ledger_positions(self, tps) -> dict[TP, int]:  # noqa: ANN001
        out: dict[TP, int] = {}
        specs = {s.topic: s for s in self.registry}
        admin = KafkaAdmin(self.settings.kafka)  # one client for every table's check
        for topic in {tp.topic for tp in tps}:
            if topic not in specs:
                continue
            nxt = self.engine.next_offsets(topic)
            for tp in tps:
                if tp.topic == topic:
                    # Nothing in the ledger means nothing landed: from the start of the log, whatever
                    # the group committed (an offset below the log start resets to the earliest).
                    out[tp] = nxt.get(tp.partition, 0)
            check_ledger_within_log(self.settings, specs[topic], nxt, admin)
        for topic in {tp.topic for tp in out}:
            check_not_rewound(topic, {tp.partition: o for tp, o in out.items() if tp.topic == topic},
                              {p: o for (t, p), o in self.read_from.items() if t == topic
                               and TP(topic, p) in out})
        log.info("worker.seek_to_ledger", positions={f"{tp.topic}[{tp.partition}]": o for tp, o in out.items()})
        for tp, o in out.items():
            self.read_from[(tp.topic, tp.partition)] = o
        return out

    def restart_for(self, exc: LedgerRewound) -> None:
        """A replay moved a landing position back below where this worker reads: stop as SIGTERM
        stops it, and let the CLI start the same command again (a fresh consumer seeks to the new
        positions). Not `crash()`: awaited from inside an agent, the crash cancels the very task
        awaiting it and the worker hangs half-stopped (the fault harness found it so)."""
        if self.restart_reason is not None:
            return  # already stopping
        self.restart_reason = str(exc)
        log.warning("worker.ledger_rewound", reason=str(exc), action="restarting to read from the new positions")
        os.kill(os.getpid(), signal.SIGTERM)


class _Buffer:
    """One table's pending messages: kept until they have landed."""

    def __init__(self) -> None:
        self.messages: list[RawMessage] = []
        self.since: float | None = None
        self.last_add = 0.0
        self.caught_up = False

    def add(self, m: RawMessage) -> None:
        self.last_add = time.monotonic()
        if not self.messages:
            self.since = self.last_add
        self.messages.append(m)

    def landed(self, n: int) -> None:
        """Drop the first `n` messages (a landed batch); later arrivals stay."""
        del self.messages[:n]
        self.since = time.monotonic() if self.messages else None


def build_app(
    config: PipelineConfig,
    settings: Settings,
    engine: WarehouseEngine,
    specs: list[TableSpec],
    *,
    batch_size: int = 100_000,
    max_batch_age_seconds: float = 900.0,
    web_port: int | None = None,
    after_landing: AfterLanding | None = None,
) -> LandingApp:
    app_id = f"{config.pipeline.name}.landing"
    # faust makes a data folder even with the memory store, in the working directory by default
    # (one per pipeline name: tests left dozens); it creates the last level only.
    datadir = Path(tempfile.gettempdir()) / "ordertrack-faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = LandingApp(
        app_id,
        datadir=str(datadir / app_id),
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        # TLS and SASL as every other client has them; checked to be the configured protocol.
        broker_credentials=faust_credentials(settings.kafka),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        stream_wait_empty=False,
        broker_commit_every=1000,
        # A worker that died is noticed after 10s (faust's default is 60s), so its replacement
        # is assigned the partitions quickly.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
    )
    app.engine = engine
    app.registry = TableRegistry(config)
    app.settings = settings
    app.ledger_outage = Outage("warehouse ledger")
    app.read_from = {}

    lander = Lander(engine, config, settings, after_landing)
    outages = {s.name: Outage(f"warehouse landing of {s.name}") for s in specs}

    @app.task
    async def prepare() -> None:
        for spec in specs:
            await _until_ok(partial(lander.ensure_table, spec), Outage(f"raw table {spec.name}"))

    buffers = {s.name: _Buffer() for s in specs}
    locks: dict[str, asyncio.Lock] = {}

    async def flush(spec: TableSpec, force: bool = False) -> None:
        # Batches of a table land one at a time, in offset order: the ledger's next offset is
        # the highest landed offset + 1, so an earlier batch landing later would be skipped.
        async with locks.setdefault(spec.name, asyncio.Lock()):
            buf = buffers[spec.name]
            aged = buf.since is not None and time.monotonic() - buf.since >= max_batch_age_seconds
            if not buf.messages or not (force or buf.caught_up or aged or len(buf.messages) >= batch_size):
                return
            msgs = buf.messages[:batch_size]
            t0 = time.perf_counter()
            last = last_offsets(msgs)
            expected = {p: app.read_from[(spec.topic, p)] for p in last if (spec.topic, p) in app.read_from}
            try:
                res = await _until_ok(lambda: lander.land(spec, msgs, expected), outages[spec.name],
                                      fatal=(LedgerRewound, SecurityError), first_offset=min(m.offset for m in msgs),
                                      messages=len(msgs))
            except LedgerRewound as exc:
                app.restart_for(exc)
                return
            for p in expected:
                app.read_from[(spec.topic, p)] = max(app.read_from[(spec.topic, p)], last[p] + 1)
            buf.landed(len(msgs))
            if not buf.messages:
                buf.caught_up = False
            metrics.BATCH_SECONDS.labels(spec.name).observe(time.perf_counter() - t0)
            log.info("landing.batch", table=spec.name, messages=len(msgs), landed=res.landed,
                     skipped=res.skipped, rejected=len(res.rejected), deletes=res.deletes)

    lag_outage = Outage("lag probe")

    @app.timer(interval=30.0)
    async def export_lag() -> None:
        # Keeps the lag gauges of the metrics endpoint current; a failed probe never stops the worker.
        try:
            await asyncio.to_thread(measure_lag, config, settings, engine, specs)
        except Exception as exc:
            lag_outage.failed(exc)
        else:
            lag_outage.recovered()

    rewind_outage = Outage("replay watch")

    @app.timer(interval=REWIND_CHECK_SECONDS)
    async def watch_rewinds() -> None:
        # A replay is noticed by the next landing; a table with nothing to land meanwhile would
        # never re-land the replayed period, so its position is compared here too.
        try:
            for spec in specs:
                # Taken before the read: a landing committing meanwhile moves both forward.
                reading = {p: o for (t, p), o in app.read_from.items() if t == spec.topic}
                positions = await asyncio.to_thread(engine.next_offsets, spec.topic)
                check_not_rewound(spec.topic, positions, reading)
        except LedgerRewound as exc:
            app.restart_for(exc)
        except Exception as exc:  # the warehouse away: landing says so too; try again next time
            rewind_outage.failed(exc)
        else:
            rewind_outage.recovered()

    @app.timer(interval=1.0)
    async def flush_due() -> None:
        # take_events yields only when messages arrive: a backlog that ended on a full chunk, or an
        # aged batch of a quiet stream, is flushed from here once nothing came for IDLE_SECONDS.
        for spec in specs:
            lock = locks.get(spec.name)
            if lock is not None and lock.locked():
                continue  # landing or waiting out an outage: never hold up the other tables
            buf = buffers[spec.name]
            if buf.messages and time.monotonic() - buf.last_add >= IDLE_SECONDS:
                buf.caught_up = True
            await flush(spec)

    for spec in specs:
        topic = app.topic(spec.topic, value_serializer="raw", key_serializer="raw")

        async def land_table(stream: Any, spec: TableSpec = spec) -> None:
            buf = buffers[spec.name]
            chunk = min(batch_size, 10_000)
            async for events in stream.take_events(chunk, within=1.0):
                for e in events:
                    m = e.message
                    buf.add(RawMessage(m.partition, m.offset, m.value, header(list(m.headers or ()), "window_id"), m.timestamp))
                # Less than a full chunk within a second: what is committed has been read.
                buf.caught_up = len(events) < chunk
                while buf.messages and (buf.caught_up or len(buf.messages) >= batch_size):
                    before = len(buf.messages)
                    await flush(spec)
                    if len(buf.messages) == before:
                        break

        app.agent(topic, name=f"land_{spec.name}", concurrency=1)(land_table)
    return app


async def _until_ok(fn: Callable[[], T], outage: Outage, fatal: tuple[type[Exception], ...] = (),
                    **context: object) -> T:
    """Run `fn` in a thread until it succeeds, waiting out failures with the outage's backoff
    (`fatal` errors are raised at once). Cancellation (the worker stopping) ends the wait; the
    ledger keeps what did not land."""
    while True:
        try:
            out = await asyncio.to_thread(fn)
        except fatal:
            raise
        except Exception as exc:
            await asyncio.sleep(outage.failed(exc, **context))
            continue
        outage.recovered(**context)
        return out
