"""`consume --drain`: land every committed message up to the end offsets seen at start, then stop.

The ledger decides where to start: each partition is assigned at the warehouse's next offset,
whatever the consumer group committed. Offsets are committed to Kafka only after the landing
transaction committed, and only for lag tools: correctness never depends on them.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumers import metrics
from consumers.lander import Lander
from consumers.ledger import check_ledger_within_log
from consumers.staging import Gathered, header
from ordertrack.config import PipelineConfig
from ordertrack.errors import ServiceUnavailableError
from ordertrack.kafka.clients import routed
from ordertrack.kafka.messages import position
from ordertrack.kafka.security import client_conf
from ordertrack.log import get_logger
from ordertrack.progress import Progress
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import AfterLanding, WarehouseEngine
from ordertrack.warehouse.positions import LedgerRewound

log = get_logger(__name__)


@dataclass
class TableDrain:
    table: str
    messages: int = 0
    landed: int = 0
    skipped: int = 0
    rejected: int = 0
    deletes: int = 0  # of `landed`: source deletes (binlog CDC)
    batches: int = 0
    added_columns: list[str] = field(default_factory=list)


def consumer_config(config: PipelineConfig, settings: Settings) -> dict:
    return routed({
        **client_conf(settings.kafka),
        "group.id": f"{config.pipeline.name}.landing",
        "client.id": f"{config.pipeline.name}.landing",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        # A drain reads large batches: fewer, larger fetches (librdkafka's 1 MB a partition is
        # meant for many small consumers).
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
    })


def commit_for_lag_tools(c: Consumer, offsets: list[TopicPartition]) -> None:
    """Commit to the group for outside lag tools. A running worker owns the group, and the broker
    refuses commits from a consumer that is not a member: that is fine, the ledger is the truth
    (and the worker commits its own progress), so it is noted and landing goes on."""
    try:
        c.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        log.info("landing.group_commit_skipped", reason=exc.args[0].str(),
                 hint="another member (a running worker) owns the group; the warehouse ledger is unaffected")


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while records are read into a batch: reading creates
    millions of short-lived objects that reference counting frees, and each collection their
    allocations trigger rescans every object the batch already holds. Measured on a 500k-message
    drain: a sixth of its time while each record was an object; since records are gathered column
    by column (`Gathered`), within the noise. Back on for the landing, which runs as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def gather(records: list[Message], pending: dict[str, Gathered], ends: dict[tuple[str, int], int],
           open_parts: set[tuple[str, int]]) -> None:
    """Put one `consume()` batch into its topics' batches: records below their partition's end
    offset; a partition whose end is reached (or read past, or at its end-of-partition event) leaves
    `open_parts`. Most batches hold only records below their ends: they are taken column by column,
    a few calls per batch instead of a dozen per record (a backfill drains millions). That relies on
    each partition's records coming in offset order, as librdkafka hands them to a consumer that
    assigns its partitions once and never seeks (the drain)."""
    if not records:
        return
    errors = [m.error() for m in records]
    if not all(e is None for e in errors):  # (a KafkaError cannot be compared with None by ==)
        for m, err in zip(records, errors):
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise ServiceUnavailableError(f"Reading {m.topic()} failed: {err.str()}")
        # End-of-partition events close their partitions, whatever records came beside them.
        open_parts.difference_update(position(m)[:2] for m, err in zip(records, errors) if err is not None)
        records = [m for m, err in zip(records, errors) if err is None]
        if not records:
            return
    topics = cast("list[str]", [m.topic() for m in records])
    partitions = cast("list[int]", [m.partition() for m in records])
    offsets = cast("list[int]", [m.offset() for m in records])
    # A partition's records come in offset order, so its last one here is its highest.
    last = dict(zip(zip(topics, partitions), offsets))
    if all(ends.get(k, -1) > o for k, o in last.items()):
        values = [m.value() for m in records]
        # `window_id(m)`, written out: a call per record costs more than the header's read.
        heads = cast("list[list[tuple[str, bytes | None]] | None]", [m.headers() for m in records])
        windows: list[bytes | str | None] = [h[0][1] if h and h[0][0] == "window_id" else header(h, "window_id")
                                             for h in heads]
        by_topic = set(topics)
        if len(by_topic) == 1:
            pending[topics[0]].extend(partitions, offsets, values, windows)
        else:
            for topic in by_topic:
                at = [i for i, t in enumerate(topics) if t == topic]
                pending[topic].extend([partitions[i] for i in at], [offsets[i] for i in at],
                                      [values[i] for i in at], [windows[i] for i in at])
        open_parts.difference_update(k for k, o in last.items() if o + 1 >= ends[k])
        return
    for m in records:  # an end reached (or a partition not drained) among them: record by record
        topic, partition, offset = position(m)
        key = (topic, partition)
        stop_at = ends.get(key)
        if stop_at is None or offset >= stop_at:
            open_parts.discard(key)
            continue
        pending[topic].add(m, partition, offset)
        if offset + 1 >= stop_at:
            open_parts.discard(key)


def pause_finished(c: Consumer, ends: dict[tuple[str, int], int], open_parts: set[tuple[str, int]],
                   paused: set[tuple[str, int]]) -> None:
    """Stop fetching partitions whose end this pass has reached. A producer writing beside the
    drain (`run-once`, a backfill) keeps their logs growing, and without a pause librdkafka goes on
    prefetching them: measured in `bench/end_to_end.py`'s (g), half again as many records as it
    landed were fetched, handed over and thrown away, one by one. Pausing purges what it holds of
    them; the next pass assigns them afresh from the ledger."""
    done = [k for k in ends if k not in open_parts and k not in paused]
    if done:
        c.pause([TopicPartition(t, p) for t, p in done])
        paused.update(done)


def drain(
    config: PipelineConfig,
    settings: Settings,
    engine: WarehouseEngine,
    specs: list[TableSpec],
    *,
    batch_size: int = 100_000,
    stop: threading.Event | None = None,
    after_landing: AfterLanding | None = None,
    progress: Progress | None = None,
    lander: Lander | None = None,
    ensure_tables: bool = True,
) -> list[TableDrain]:
    """Land every committed message of `specs` up to the end offsets seen at start. `progress`,
    if given, is told the offsets to pass and advances as each batch commits. A caller that
    drains again and again (`ordertrack.once`) passes its own `lander` (and with it one
    dead-letter producer) and creates the raw tables once itself (`ensure_tables=False`)."""
    stop = stop or threading.Event()
    lander = lander or Lander(engine, config, settings, after_landing)
    results = {s.topic: TableDrain(s.name) for s in specs}
    for spec in specs if ensure_tables else ():
        results[spec.topic].added_columns += lander.ensure_table(spec)
    while True:
        try:
            return _drain_pass(config, settings, engine, specs, lander, results, batch_size, stop, progress)
        except LedgerRewound as exc:
            # A replay committed while this drain ran: read again from the positions it set.
            log.warning("landing.ledger_rewound", reason=str(exc), action="reading again from the new positions")


def _drain_pass(config: PipelineConfig, settings: Settings, engine: WarehouseEngine, specs: list[TableSpec],
                lander: Lander, results: dict[str, TableDrain], batch_size: int,
                stop: threading.Event, progress: Progress | None = None) -> list[TableDrain]:
    """One pass from the warehouse's positions to the end offsets seen at its start."""
    c = Consumer(consumer_config(config, settings))
    try:
        by_topic = {s.topic: s for s in specs}
        ends: dict[tuple[str, int], int] = {}
        reading: dict[tuple[str, int], int] = {}  # where this pass reads on from: sent as `expected`
        assignment = []
        for spec in specs:
            try:
                md = c.list_topics(spec.topic, timeout=15).topics[spec.topic]
            except KafkaException:
                raise ServiceUnavailableError(f"Kafka at {settings.kafka.bootstrap_servers} did not answer.") from None
            if md.error is not None:
                raise ServiceUnavailableError(f"Topic {spec.topic} does not exist: run `ordertrack topics create`.")
            landed = engine.next_offsets(spec.topic)
            check_ledger_within_log(settings, spec, landed)
            for p in sorted(md.partitions):
                # Under read_committed this "high" is the last stable offset: committed data only.
                end = c.get_watermark_offsets(TopicPartition(spec.topic, p), timeout=15, cached=False)[1]
                start = landed.get(p, 0)
                if start < end:
                    ends[(spec.topic, p)] = end
                    reading[(spec.topic, p)] = start
                    assignment.append(TopicPartition(spec.topic, p, start))
        if progress is not None:
            # Offsets, not messages: aborted records and transaction markers take offsets too, and
            # a drain that reaches its ends has passed all of them. A pass after a replay's rewind
            # adds what it reads again.
            progress.update(total=progress.done + sum(ends[k] - reading[k] for k in ends))
        if not assignment:
            return list(results.values())
        c.assign(assignment)
        pending = {t: Gathered() for t in by_topic}
        open_parts = set(ends)
        paused: set[tuple[str, int]] = set()

        def flush(topic: str) -> None:
            msgs = pending[topic]
            if not msgs:
                return
            spec = by_topic[topic]
            t0 = time.perf_counter()
            last = msgs.last_offsets()
            res = lander.land(spec, msgs, {p: reading[(topic, p)] for p in last})
            passed = sum(o + 1 - reading[(topic, p)] for p, o in last.items())
            for p, o in last.items():
                reading[(topic, p)] = o + 1
            metrics.BATCH_SECONDS.labels(spec.name).observe(time.perf_counter() - t0)
            r = results[topic]
            r.messages += len(msgs)
            r.landed += res.landed
            r.skipped += res.skipped
            r.rejected += len(res.rejected)
            r.deletes += res.deletes
            r.batches += 1
            r.added_columns += res.added_columns
            # Only now, after the warehouse commit: tell the group where we are (for lag tools).
            commit_for_lag_tools(c, [TopicPartition(topic, p, o + 1) for p, o in last.items()])
            if progress is not None:
                progress.advance(passed, table=spec.name)
            log.info("landing.batch", table=spec.name, messages=len(msgs), landed=res.landed,
                     skipped=res.skipped, rejected=len(res.rejected), deletes=res.deletes)
            pending[topic] = Gathered()

        while open_parts and not stop.is_set():
            with paused_gc():
                records = c.consume(num_messages=10_000, timeout=1.0)
                still_open = len(open_parts)
                gather(records, pending, ends, open_parts)
                del records  # the batches hold what they need; the records can go
            if len(open_parts) < still_open:
                pause_finished(c, ends, open_parts, paused)
            for topic, msgs in pending.items():
                if len(msgs) >= batch_size:
                    flush(topic)
        for topic in pending:
            flush(topic)
        if progress is not None:  # the markers and aborted records after each partition's last message
            progress.advance(sum(ends[k] - reading[k] for k in ends if k not in open_parts))
        return list(results.values())
    finally:
        c.close()
