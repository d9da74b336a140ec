"""`ordertrack replay`: re-land a period of a table from what its Kafka topic still holds.

Uses: a raw table truncated or restored from an old snapshot, a warehouse that lost rows, a merge
fixed and to be run again over the raw versions. Nothing is re-read from the source (that is
`ordertrack backfill`); the period must still be within the topic's retention.

1. **Plan** (`plan_replay`, all a dry run does): per partition, the offset of `--from` (Kafka's
   offsets for times, or `--from-offset P:O`), the end of the period (`--to`'s offset, else what
   has landed), the retention limit (the earliest offset and time the topic still holds: a period
   reaching before it is reported and clamped), the messages in range and the raw rows there now.
2. **Rewind** (`apply_replay`), one warehouse transaction per table: remove the period's raw rows
   and open a hole [from, to) in the replays table (`ordertrack.warehouse.positions`). A replay of
   a partition that still has an open hole merges with it. Nothing else moves: the ledger keeps
   every landing, and offsets after the period stay landed.
3. **Re-land**: the worker (or `consume --drain`) lands the hole's offsets again from Kafka,
   moving the hole as it goes; the marts merge them under newer-wins, so they end with the newest
   version of every key. A worker that was running when the rewind committed finds out inside its
   next landing transaction (`LedgerRewound`, nothing committed) and restarts at the new position.

Change events of a Debezium table with hard deletes are replayed to the end of what landed (no
`--to`): re-landed in order, a later delete removes again a key an earlier event put back.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from confluent_kafka import KafkaError, TopicPartition

from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError, ServiceUnavailableError
from ordertrack.identifiers import quote_ansi as q
from ordertrack.kafka.reader import WatchfulConsumer, partitions, reader
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc, parse_utc
from ordertrack.warehouse.engine import Execute, WarehouseEngine
from ordertrack.warehouse.positions import REPLAYS_TABLE, positions_relation
from ordertrack.warehouse.sqlfiles import render_text

log = get_logger(__name__)


@dataclass
class PartitionReplay:
    partition: int
    log_start: int
    """The earliest offset the topic still holds (retention)."""
    log_start_time: str | None
    """When the earliest held message was written (UTC), None when the partition holds none."""
    log_end: int
    landed_next: int
    """The ledger's next offset: everything below it has landed."""
    from_offset: int
    to_offset: int
    """End of the period (excluded): `--to`'s offset, capped at what has landed."""
    messages: int
    """Offsets in [from, to): messages to re-land, at most (transaction markers take offsets too)."""
    raw_rows: int = 0
    """Raw rows of [from, to) now: each is replaced when its offset is landed again."""
    before_retention: bool = False
    """The period asked for starts before what the topic still holds: it was clamped to the log start."""


@dataclass
class ReplayPlan:
    table: str
    topic: str
    replay_id: str
    requested: str
    partitions: list[PartitionReplay] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[PartitionReplay]:
        return [p for p in self.partitions if p.from_offset < p.to_offset]

    def to_dict(self) -> dict:
        return {"table": self.table, "topic": self.topic, "replay_id": self.replay_id, "requested": self.requested,
                "messages": sum(p.messages for p in self.todo), "raw_rows": sum(p.raw_rows for p in self.todo),
                "partitions": [asdict(p) for p in self.partitions], "notes": self.notes}


def parse_offsets(values: list[str]) -> dict[int, int]:
    """`--from-offset P:O` values (repeatable) as partition -> offset."""
    out: dict[int, int] = {}
    for v in values:
        p, sep, o = v.partition(":")
        if not sep or not p.strip().isdigit() or not o.strip().isdigit():
            raise ConfigError(f"--from-offset {v!r}: give PARTITION:OFFSET, e.g. 0:1200 (repeat it per partition).")
        out[int(p)] = int(o)
    return out


def _first_time(c: WatchfulConsumer, topic: str, partition: int, offset: int, end: int) -> str | None:
    """When the first message at or after `offset` was written, or None (nothing readable there)."""
    if offset >= end:
        return None
    c.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if err := m.error():
            if err.code() == KafkaError._PARTITION_EOF:
                return None
            raise ServiceUnavailableError(f"Reading {topic} failed: {err.str()}")
        return format_utc(m.timestamp()[1] // 1000)
    return None


def landing_positions(engine: WarehouseEngine, topic: str) -> dict[int, tuple[int, int | None, int | None]]:
    """partition -> (ledger next offset, open hole's next offset, open hole's end)."""
    ph = engine.placeholder
    rows = engine.query(f"SELECT partition, next_offset, hole_next, hole_to FROM ({positions_relation(engine.raw_schema, ph)}) AS p",
                        [topic, topic])
    return {int(p): (int(n), h, t) for p, n, h, t in rows}


def plan_replay(config: PipelineConfig, settings: Settings, engine: WarehouseEngine, spec: TableSpec, *,
                from_time: int | None = None, from_offsets: dict[int, int] | None = None,
                to_time: int | None = None) -> ReplayPlan:
    """What a replay would re-land, partition by partition; changes nothing."""
    if (from_time is None) == (from_offsets is None):
        raise ConfigError("Give --from TIME or --from-offset PARTITION:OFFSET (not both).")
    if spec.binlog and spec.deletes == "hard" and to_time is not None:
        raise ConfigError(f"{spec.name} carries source deletes (binlog CDC, deletes: hard): replay it to the end of "
                          "what landed (leave out --to), so the deletes after the period are applied again in order.")
    requested = (f"--from {format_utc(from_time)}" if from_time is not None
                 else "--from-offset " + " ".join(f"{p}:{o}" for p, o in sorted((from_offsets or {}).items())))
    if to_time is not None:
        requested += f" --to {format_utc(to_time)}"
    plan = ReplayPlan(spec.name, spec.topic, uuid.uuid4().hex[:12], requested)
    landed = landing_positions(engine, spec.topic)
    c = reader(settings.kafka, f"{config.pipeline.name}.replay", "read_committed")
    try:
        parts = partitions(c, settings.kafka.bootstrap_servers, spec.topic, "run `ordertrack topics create`")
        if from_offsets is not None and (unknown := sorted(set(from_offsets) - set(parts))):
            raise ConfigError(f"{spec.topic} has no partition {', '.join(map(str, unknown))} (it has {len(parts)}).")
        bounds = {p: c.get_watermark_offsets(TopicPartition(spec.topic, p), timeout=15, cached=False) for p in parts}

        def offsets_at(ms: int) -> dict[int, int]:
            found = c.offsets_for_times([TopicPartition(spec.topic, p, ms) for p in parts], timeout=15)
            # -1: nothing written at or after that time on the partition: its end
            return {tp.partition: tp.offset if tp.offset >= 0 else bounds[tp.partition][1] for tp in found}

        starts = offsets_at(from_time * 1000) if from_time is not None else {}
        ends = offsets_at(to_time * 1000) if to_time is not None else {}
        for p in parts:
            low, high = bounds[p]
            nxt = landed.get(p, (0, None, None))[0]
            if from_offsets is not None and p not in from_offsets:
                continue
            want = from_offsets[p] if from_offsets is not None else starts[p]
            if want > high:
                raise ConfigError(f"--from-offset {p}:{want} is past the end of {spec.topic} partition {p} ({high}).")
            first_time = _first_time(c, spec.topic, p, low, high)
            # A log that starts past offset 0 has lost messages to retention; a time before its
            # first held message may have meant some of them.
            before = want < low or (from_time is not None and want == low > 0 and first_time is not None
                                    and from_time < parse_utc(first_time))
            start = max(want, low)
            stop = min(ends.get(p, nxt), nxt)
            pr = PartitionReplay(p, low, first_time, high, nxt, start, max(start, stop), max(0, stop - start),
                                 before_retention=before)
            plan.partitions.append(pr)
            if before:
                plan.notes.append(
                    f"partition {p}: the period starts before what {spec.topic} still holds (retention): its earliest "
                    f"message is offset {low}" + (f", written {first_time} UTC" if first_time else "") +
                    "; the replay starts there, and raw rows before it are kept. `ordertrack backfill` re-publishes "
                    "older periods from the source.")
    finally:
        c.close()
    _count_raw(engine, spec, plan)
    if not plan.todo:
        plan.notes.append("nothing to replay: no landed offsets in the period")
    return plan


def _count_raw(engine: WarehouseEngine, spec: TableSpec, plan: ReplayPlan) -> None:
    if not engine.raw_columns(spec):
        return
    ph = engine.placeholder
    for p in plan.todo:
        p.raw_rows = int(engine.query(
            f"SELECT COUNT(*) FROM {q(spec.raw_schema)}.{q(spec.raw_table)} WHERE _kafka_topic = {ph} "
            f"AND _kafka_partition = {ph} AND _kafka_offset >= {ph} AND _kafka_offset < {ph}",
            [spec.topic, p.partition, p.from_offset, p.to_offset])[0][0])


@dataclass
class ReplayResult:
    table: str
    replay_id: str
    holes: dict[int, tuple[int, int]]
    """partition -> the open hole [from, to) after the rewind (merged with an earlier open one)."""


def apply_replay(engine: WarehouseEngine, spec: TableSpec, plan: ReplayPlan) -> ReplayResult:
    """Open the period's holes, in one transaction. Raw rows stay until their offsets are landed
    again: each re-landing replaces its rows, so raw never lacks a row Kafka cannot give back."""
    rel = {"__replays__": (engine.raw_schema, REPLAYS_TABLE)}

    def sql(text: str) -> str:
        return render_text(text, engine.dialect, rel)

    open_hole = sql("SELECT MIN(next_offset), MAX(to_offset) FROM __replays__ "
                    "WHERE topic = :topic AND partition = :p AND finished_at IS NULL")
    close = sql("UPDATE __replays__ SET finished_at = :now, requested = requested || :why "
                "WHERE topic = :topic AND partition = :p AND finished_at IS NULL")
    insert = sql("INSERT INTO __replays__ (replay_id, table_name, topic, partition, from_offset, to_offset, "
                 "next_offset, requested_at, raw_rows, requested) "
                 "VALUES (:id, :table, :topic, :p, :a, :b, :a, :now, :raw_rows, :requested)")

    def step(execute: Execute) -> ReplayResult:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        result = ReplayResult(spec.name, plan.replay_id, {})
        for pr in plan.todo:
            a, b = pr.from_offset, pr.to_offset
            hole_next, hole_to = execute(open_hole, {"topic": spec.topic, "p": pr.partition})[0]
            if hole_next is not None:  # what the earlier replay has not re-landed yet stays in the hole
                a, b = min(a, int(hole_next)), max(b, int(hole_to))
                execute(close, {"now": now, "why": f" (merged into replay {plan.replay_id})",
                                "topic": spec.topic, "p": pr.partition})
            execute(insert, {"topic": spec.topic, "p": pr.partition, "a": a, "b": b, "id": plan.replay_id,
                             "table": spec.name, "now": now, "raw_rows": pr.raw_rows, "requested": plan.requested})
            result.holes[pr.partition] = (a, b)
        return result

    result = engine.in_transaction(step)
    log.info("replay.rewound", table=spec.name, replay_id=plan.replay_id,
             holes={str(p): list(h) for p, h in result.holes.items()}, requested=plan.requested)
    return result


@dataclass
class ReplayProgress:
    replay_id: str
    table: str
    partition: int
    from_offset: int
    to_offset: int
    next_offset: int
    requested_at: str
    finished_at: str | None


def replays(engine: WarehouseEngine, topic: str | None = None, *, open_only: bool = False) -> list[ReplayProgress]:
    """Replays recorded in the warehouse, newest first: open ones are still being re-landed."""
    where, params = [], []
    if topic is not None:
        where.append(f"topic = {engine.placeholder}")
        params.append(topic)
    if open_only:
        where.append("finished_at IS NULL")
    rows = engine.query(
        "SELECT replay_id, table_name, partition, from_offset, to_offset, next_offset, requested_at, finished_at "
        f"FROM {q(engine.raw_schema)}.{q(REPLAYS_TABLE)}" + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY requested_at DESC, partition", params)
    return [ReplayProgress(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), str(r[6]),
                           None if r[7] is None else str(r[7])) for r in rows]
