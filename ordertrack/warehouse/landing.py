"""Landing one batch, written once for every engine.

The statements are Redshift SQL (the production dialect, like the mart files) with `:name`
parameters; `render` transpiles them with sqlglot for the engine in use, and the engine's
session binds the parameters. Each engine implements only what really differs
(`ordertrack.warehouse.engine.Session`): how a typed batch becomes the stage relation (DuckDB
reads the Arrow table in place; the others load a temporary table), its parameter style, its
transactions.

One landing is one warehouse transaction:

1. read where landing stands (`positions`) and refuse a reader a replay has moved back
   (`LedgerRewound`);
2. stage the typed rows (`typed.py`): every message, rejected or not, with its reason;
3. `fresh`: the staged messages that land now (new offsets, or re-landed into a replay's hole);
4. re-landed offsets replace their raw rows; valid rows are appended to raw; rejects get one
   open exceptions row each (never a second for the same message); the ledger records each
   partition's offset range; a replay's hole moves past the batch;
5. the `after` hook (the mart merge) and `before_commit` (the dead letters) run, then COMMIT.

What to do when a step fails (a merge that fails lands the batch unmerged, values that do not
fit widen the column first) is the lander's policy (`consumers/lander.py`), not the engine's:
here a failure of `after` becomes `MergeFailed` with nothing committed, and values that do not
fit raise `MisfitColumns` when asked to.
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ordertrack.identifiers import quote_ansi as q
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import (
    EXCEPTIONS_TABLE,
    LEDGER_TABLE,
    AfterLanding,
    BeforeCommit,
    LandResult,
    MergeFailed,
    MisfitColumns,
    Misfits,
    Session,
    WarehouseEngine,
)
from ordertrack.warehouse.positions import REPLAYS_TABLE, check_not_rewound, positions_relation
from ordertrack.warehouse.sqlfiles import transpile as render
from ordertrack.warehouse.typed import ParsedBatch, parse, typed

STAGE = "ordertrack_stage"
FRESH = "ordertrack_fresh"




# -- the statements (Redshift dialect) -------------------------------------------------------------
def positions_sql(raw_schema: str) -> str:
    return f"SELECT partition, resume, hole_next FROM ({positions_relation(raw_schema, ':topic')}) AS p"


FRESH_TABLE_SQL = f"CREATE TEMP TABLE {FRESH} AS SELECT * FROM {STAGE} WHERE 1 = 0"
"""An empty copy of the stage, filled by `fresh_sql`: a CREATE ... AS with bound parameters is
not something every driver can prepare (Redshift prepares SELECT, INSERT, UPDATE, DELETE)."""


def fresh_sql(raw_schema: str) -> str:
    """The staged messages that land now: offsets not landed yet, or offsets in a replay's open
    hole not re-landed yet, read by a reader that declared its position."""
    return (
        f"INSERT INTO {FRESH} SELECT s.* FROM {STAGE} s "
        f"LEFT JOIN ({positions_relation(raw_schema, ':topic')}) p ON p.partition = s._partition "
        "WHERE s._offset >= COALESCE(p.next_offset, 0) "
        "OR (s._declared AND s._offset >= p.hole_next AND s._offset < p.hole_to)"
    )


def replace_relanded_sql(spec: TableSpec, raw_schema: str) -> str:
    """Delete the raw rows of the offsets this batch re-lands (below the ledger's next offset)."""
    raw = f"{q(spec.raw_schema)}.{q(spec.raw_table)}"
    return (
        f"DELETE FROM {raw} USING (SELECT f._partition, f._offset FROM {FRESH} f "
        f"JOIN ({positions_relation(raw_schema, ':topic')}) p ON p.partition = f._partition "
        f"WHERE f._offset < p.next_offset) AS relanded "
        f"WHERE {q(spec.raw_table)}._kafka_topic = :topic AND {q(spec.raw_table)}._kafka_partition = relanded._partition "
        f"AND {q(spec.raw_table)}._kafka_offset = relanded._offset"
    )


def insert_raw_sql(spec: TableSpec, source_columns: list[str]) -> str:
    cols = ", ".join(q(c) for c in source_columns)
    return (
        f"INSERT INTO {q(spec.raw_schema)}.{q(spec.raw_table)} ({cols}, _kafka_topic, _kafka_partition, _kafka_offset, "
        f"_window_id, _ingested_at, _batch_id) "
        f"SELECT {', '.join(f'f.{q(c)}' for c in source_columns)}, CAST(:topic AS VARCHAR(255)), f._partition, f._offset, "
        f"f._window_id, CAST(:now AS TIMESTAMP), CAST(:batch_id AS VARCHAR(32)) FROM {FRESH} f WHERE f._reason IS NULL"
    )


def exceptions_sql(mart_schema: str) -> str:
    """One open exceptions row per rejected message: a message landed again (a replay) whose row
    is still open gets no second one."""
    exc = f"{q(mart_schema)}.{q(EXCEPTIONS_TABLE)}"
    return (
        f"INSERT INTO {exc} (order_id, exception_type, detected_at, notes, source_table, kafka_topic, kafka_partition, "
        f"kafka_offset) SELECT f._order_id, 'dead_letter', CAST(:now AS TIMESTAMP), f._reason, "
        f"CAST(:table AS VARCHAR(128)), CAST(:topic AS VARCHAR(255)), f._partition, f._offset FROM {FRESH} f "
        f"WHERE f._reason IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {exc} e WHERE e.exception_type = 'dead_letter' "
        f"AND e.resolved_at IS NULL AND e.kafka_topic = :topic AND e.kafka_partition = f._partition "
        f"AND e.kafka_offset = f._offset)"
    )


def ledger_sql(raw_schema: str) -> str:
    return (
        f"INSERT INTO {q(raw_schema)}.{q(LEDGER_TABLE)} (topic, partition, first_offset, last_offset, message_count, "
        f"landed_rows, rejected_rows, landed_at, batch_id, merged_at) "
        f"SELECT CAST(:topic AS VARCHAR(255)), _partition, MIN(_offset), MAX(_offset), COUNT(*), "
        f"SUM(CASE WHEN _reason IS NULL THEN 1 ELSE 0 END), SUM(CASE WHEN _reason IS NULL THEN 0 ELSE 1 END), "
        f"CAST(:now AS TIMESTAMP), CAST(:batch_id AS VARCHAR(32)), "
        f"CASE WHEN :merged THEN CAST(:now AS TIMESTAMP) END FROM {FRESH} GROUP BY _partition"
    )


def advance_holes_sql(raw_schema: str) -> str:
    """Move each open hole of a declared partition past the batch's last offset; close the holes
    the reader has passed. A declared reader reads its partition contiguously from at most the
    hole's next offset (the `expected` check), so every hole offset up to the batch's last has
    been re-landed."""
    h = f"{q(raw_schema)}.{q(REPLAYS_TABLE)}"
    return (
        f"UPDATE {h} SET "
        f"next_offset = CASE WHEN b.last_offset + 1 >= {q(REPLAYS_TABLE)}.to_offset THEN {q(REPLAYS_TABLE)}.to_offset "
        f"WHEN b.last_offset + 1 > {q(REPLAYS_TABLE)}.next_offset THEN b.last_offset + 1 "
        f"ELSE {q(REPLAYS_TABLE)}.next_offset END, "
        f"finished_at = CASE WHEN b.last_offset + 1 >= {q(REPLAYS_TABLE)}.to_offset THEN CAST(:now AS TIMESTAMP) END "
        f"FROM (SELECT _partition, MAX(_offset) AS last_offset FROM {STAGE} WHERE _declared GROUP BY _partition) b "
        f"WHERE {q(REPLAYS_TABLE)}.topic = :topic AND {q(REPLAYS_TABLE)}.partition = b._partition "
        f"AND {q(REPLAYS_TABLE)}.finished_at IS NULL"
    )


COUNTS_SQL = f"SELECT COUNT(*), SUM(CASE WHEN _reason IS NULL THEN 1 ELSE 0 END) FROM {FRESH}"
REJECTS_SQL = f"SELECT _partition, _offset, _reason FROM {FRESH} WHERE _reason IS NOT NULL ORDER BY _partition, _offset"
DROP_FRESH_SQL = f"DROP TABLE {FRESH}"


def mark_merged_sql(raw_schema: str) -> str:
    return f"UPDATE {q(raw_schema)}.{q(LEDGER_TABLE)} SET merged_at = CAST(:now AS TIMESTAMP) WHERE batch_id = :batch_id"


def unmerged_batches_sql(raw_schema: str) -> str:
    return (f"SELECT batch_id FROM {q(raw_schema)}.{q(LEDGER_TABLE)} WHERE topic = :topic AND merged_at IS NULL "
            "AND batch_id IS NOT NULL GROUP BY batch_id ORDER BY MIN(landed_at), MIN(first_offset)")


def plan(spec: TableSpec, source_columns: list[str], raw_schema: str, mart_schema: str, dialect: str) -> dict[str, str]:
    return dict(_plan(spec, tuple(source_columns), raw_schema, mart_schema, dialect))


@lru_cache(maxsize=64)
def _plan(spec: TableSpec, source_columns: tuple[str, ...], raw_schema: str, mart_schema: str,
          dialect: str) -> tuple[tuple[str, str], ...]:
    """Every statement of a landing of `spec`, rendered for `dialect`, in the order they run
    (`replace` and `advance` only while a replay's hole is open; the stage's own statements
    come from the engine). `ordertrack marts sql --landing` prints exactly these."""
    source = list(source_columns)  # transpiled once per table layout: sqlglot takes longer than a small landing
    return tuple((name, render(text, dialect)) for name, text in (
        ("positions", positions_sql(raw_schema)),
        ("fresh_table", FRESH_TABLE_SQL),
        ("fresh", fresh_sql(raw_schema)),
        ("replace", replace_relanded_sql(spec, raw_schema)),
        ("insert", insert_raw_sql(spec, source)),
        ("exceptions", exceptions_sql(mart_schema)),
        ("ledger", ledger_sql(raw_schema)),
        ("advance", advance_holes_sql(raw_schema)),
        ("counts", COUNTS_SQL),
        ("rejects", REJECTS_SQL),
        ("drop_fresh", DROP_FRESH_SQL),
    ))


def utcnow() -> dt.datetime:
    """Warehouse timestamps are UTC without a zone, bound as parameters (every engine agrees)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# -- the shared steps ----------------------------------------------------------------------------
def land_batch(engine: WarehouseEngine, spec: TableSpec, topic: str, batch: pa.Table | ParsedBatch,
               after: AfterLanding | None = None, before_commit: BeforeCommit | None = None,
               misfits: Misfits = "reject", expected: dict[int, int] | None = None) -> LandResult:
    """Land `batch` (staged messages, or already parsed) in one transaction; see the module doc.
    `expected` (partition -> the offset the caller reads on from) raises `LedgerRewound` when a
    replay has moved the position below it since."""
    columns = {c: t for c, t in engine.raw_columns(spec).items() if not c.startswith("_")}
    if not columns:
        from ordertrack.errors import ConfigError

        raise ConfigError(f"Raw table {spec.raw_schema}.{spec.raw_table} does not exist yet.")
    parsed = batch if isinstance(batch, ParsedBatch) else parse(batch, columns)
    rows = typed(parsed, columns, spec.key_columns, declared=expected or ())
    if rows.misfit_columns and misfits == "raise":
        raise MisfitColumns(rows.misfit_columns)
    batch_id = uuid.uuid4().hex
    sql = plan(spec, list(columns), engine.raw_schema, engine.mart_schema, engine.dialect)

    def transaction(session: Session) -> LandResult:
        now = utcnow()
        params: dict[str, Any] = {"topic": topic, "now": now, "batch_id": batch_id, "table": spec.name,
                                  "merged": after is not None}
        session.lock(f"ordertrack.landing.{topic}")  # two landers of one topic take turns
        at = session(sql["positions"], params)
        check_not_rewound(topic, {int(p): int(o) for p, o, _ in at}, expected)
        holes = any(h is not None for _, _, h in at)
        session.stage(STAGE, rows.table, rows.types)
        session(sql["fresh_table"], {})
        session(sql["fresh"], params)
        if holes:
            session(sql["replace"], params)
        session(sql["insert"], params)
        session(sql["exceptions"], params)
        session(sql["ledger"], params)
        if holes:
            session(sql["advance"], params)
        total, landed = session(sql["counts"], {})[0]
        rejects = session(sql["rejects"], {})
        session(sql["drop_fresh"], {})
        session.unstage(STAGE)
        if after is not None:
            try:
                after(session, spec, batch_id)
            except Exception as exc:
                if engine.retryable(exc):
                    raise  # not the merge's fault: the whole landing is redone
                raise MergeFailed() from exc
        index = _positions(parsed, rows.table, rejects)
        rejected = [{"partition": int(p), "offset": int(o), "reason": r, "value": parsed.value_text(index[(p, o)])}
                    for p, o, r in rejects]
        if before_commit is not None and rejected:
            before_commit(rejected)
        return LandResult(landed=int(landed or 0), skipped=parsed.num_rows - int(total or 0), rejected=rejected,
                          batch_id=batch_id, merged=after is not None)

    return engine.in_transaction(transaction)


def _positions(parsed: ParsedBatch, table: pa.Table, rejects: list) -> dict[tuple[int, int], int]:
    """Where each rejected (partition, offset) is in the batch: looked for among the messages
    typing rejected first (a backfill batch of 500k with one poison message needs no index of all)."""
    if not rejects:
        return {}
    flagged = pc.indices_nonzero(pc.is_valid(table.column("_reason")))
    partitions = pc.take(parsed.staged.column("partition"), flagged).to_pylist()
    offsets = pc.take(parsed.staged.column("offset"), flagged).to_pylist()
    index = dict(zip(zip(partitions, offsets), flagged.to_pylist()))
    if all((int(p), int(o)) in index for p, o, _ in rejects):
        return index
    return {(p, o): i for i, (p, o) in enumerate(zip(parsed.partitions, parsed.offsets))}


def next_offsets(engine: WarehouseEngine, topic: str) -> dict[int, int]:
    rows = engine.in_transaction(lambda s: s(render(positions_sql(engine.raw_schema), engine.dialect),
                                              {"topic": topic}))
    return {int(p): int(o) for p, o, _ in rows}


def unmerged_batches(engine: WarehouseEngine, topic: str) -> list[str]:
    rows = engine.in_transaction(lambda s: s(render(unmerged_batches_sql(engine.raw_schema), engine.dialect),
                                              {"topic": topic}))
    return [r[0] for r in rows]


def mark_merged(engine: WarehouseEngine, session: Session, batch_id: str) -> None:
    session(render(mark_merged_sql(engine.raw_schema), engine.dialect), {"batch_id": batch_id, "now": utcnow()})


class SharedSql:
    """What every engine shares: the landing and the ledger's reads, through its own
    `in_transaction` and `dialect` (mixed into each engine class)."""

    def land(self: Any, spec: TableSpec, topic: str, staged: pa.Table | ParsedBatch,
             after: AfterLanding | None = None, before_commit: BeforeCommit | None = None,
             misfits: Misfits = "reject", expected: dict[int, int] | None = None) -> LandResult:
        return land_batch(self, spec, topic, staged, after=after, before_commit=before_commit, misfits=misfits,
                          expected=expected)

    def next_offsets(self: Any, topic: str) -> dict[int, int]:
        return next_offsets(self, topic)

    def unmerged_batches(self: Any, topic: str) -> list[str]:
        return unmerged_batches(self, topic)

    def mark_merged(self: Any, execute: Session, batch_id: str) -> None:
        mark_merged(self, execute, batch_id)
