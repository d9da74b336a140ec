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

Batches flush when the producer's window for the table is complete (its watermark record has
been seen and the buffer reached the window's end offsets), or at `batch_size`, or when the
oldest buffered message is `max_batch_age_seconds` old, whichever comes first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import faust
import orjson
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from ordertrack.config import PipelineConfig
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.warehouse.engine import AfterLanding, WarehouseEngine
from consumers import metrics
from consumers.lag import measure_lag
from consumers.lander import Lander
from consumers.staging import RawMessage, header

log = get_logger(__name__)


class _LedgerConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001 - faust's signature
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts; faust sets it only under exactly_once.
        consumer._isolation_level = "read_committed"
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = dict(await super().seek_to_committed())
        ledger = self.consumer.app.ledger_positions(self.assignment())
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
    positions: dict[TP, int]
    """Where each assigned partition started (the ledger's next offset)."""

    def _new_transport(self):  # noqa: ANN202 - faust's signature
        return _LedgerTransport(self.conf.broker_consumer, self, loop=self.loop)

    def ledger_positions(self, tps) -> dict[TP, int]:  # noqa: ANN001
        out: dict[TP, int] = {}
        for topic in {tp.topic for tp in tps}:
            if topic not in {s.topic for s in self.registry}:
                continue  # the watermark topic: read from the group's position
            nxt = self.engine.next_offsets(topic)
            for tp in tps:
                if tp.topic == topic:
                    # Nothing in the ledger means nothing landed: from the start of the log, whatever
                    # the group committed (an offset below the log start resets to the earliest).
                    out[tp] = nxt.get(tp.partition, 0)
        self.positions.update(out)
        log.info("worker.seek_to_ledger", positions={f"{tp.topic}[{tp.partition}]": o for tp, o in out.items()})
        return out


class _Buffer:
    """One table's pending messages and when the oldest arrived."""

    def __init__(self) -> None:
        self.messages: list[RawMessage] = []
        self.since: float | None = None
        self.last: dict[int, int] = {}  # partition -> highest buffered offset

    def add(self, m: RawMessage) -> None:
        if not self.messages:
            self.since = time.monotonic()
        self.messages.append(m)
        self.last[m.partition] = max(self.last.get(m.partition, -1), m.offset)

    def take(self) -> list[RawMessage]:
        out, self.messages, self.since = self.messages, [], None
        return out


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
    app = LandingApp(
        f"{config.pipeline.name}.landing",
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
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
    app.positions = {}
    lander = Lander(engine, config, settings, after_landing)
    # table -> partition -> end offset of the newest committed window (from its watermark record)
    window_ends: dict[str, dict[int, int]] = {}

    @app.task
    async def prepare() -> None:
        for spec in specs:
            await asyncio.to_thread(lander.ensure_table, spec)

    watermarks = app.topic(config.kafka.watermark_topic, value_serializer="raw", key_serializer="raw")

    @app.agent(watermarks, concurrency=1)
    async def track_windows(stream: Any) -> None:
        async for value in stream:
            try:
                wm = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
            if wm.get("status") == "committed" and wm.get("partition_end_offsets"):
                window_ends[wm["table"]] = {int(p): int(o) for p, o in wm["partition_end_offsets"].items()}

    def window_complete(spec: TableSpec, buf: _Buffer) -> bool:
        ends = window_ends.get(spec.name)
        if not ends or not buf.messages:
            return False
        # The window's last row in partition p sits at end - 1. A partition with nothing buffered
        # since start counts from where this worker started reading it (the ledger).
        def seen(p: int) -> int:
            return buf.last.get(p, app.positions.get(TP(spec.topic, p), 0) - 1)

        return all(seen(p) >= end - 1 for p, end in ends.items())

    buffers = {s.name: _Buffer() for s in specs}
    locks: dict[str, asyncio.Lock] = {}

    async def flush(spec: TableSpec, force: bool = False) -> None:
        buf = buffers[spec.name]
        aged = buf.since is not None and time.monotonic() - buf.since >= max_batch_age_seconds
        if not (force or len(buf.messages) >= batch_size or aged or window_complete(spec, buf)):
            return
        # Batches of a table land one at a time, in offset order: the ledger's next offset is
        # the highest landed offset + 1, so an earlier batch landing later would be skipped.
        async with locks.setdefault(spec.name, asyncio.Lock()):
            msgs = buf.take()
            if not msgs:
                return
            t0 = time.perf_counter()
            res = await asyncio.to_thread(lander.land, spec, msgs)
            metrics.BATCH_SECONDS.labels(spec.name).observe(time.perf_counter() - t0)
            log.info("landing.batch", table=spec.name, messages=len(msgs), landed=res.landed,
                     skipped=res.skipped, rejected=len(res.rejected))

    @app.timer(interval=30.0)
    async def export_lag() -> None:
        # Keeps the lag gauges of the metrics endpoint current.
        try:
            await asyncio.to_thread(measure_lag, config, settings, engine, specs)
        except Exception as exc:  # a metrics probe must never stop the worker
            log.warning("worker.lag_probe_failed", error=f"{type(exc).__name__}: {exc}")

    @app.timer(interval=1.0)
    async def flush_due() -> None:
        # take_events yields only when messages arrive; a quiet stream is flushed from here.
        for spec in specs:
            await flush(spec)

    for spec in specs:
        topic = app.topic(spec.topic, value_serializer="raw", key_serializer="raw")

        async def land_table(stream: Any, spec: TableSpec = spec) -> None:
            buf = buffers[spec.name]
            async for events in stream.take_events(min(batch_size, 10_000), within=1.0):
                for e in events:
                    m = e.message
                    buf.add(RawMessage(m.partition, m.offset, m.value, header(list(m.headers or ()), "window_id"), m.timestamp))
                await flush(spec)

        app.agent(topic, name=f"land_{spec.name}", concurrency=1)(land_table)
    return app
