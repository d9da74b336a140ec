"""The sidecar's warehouse jobs: raw retention and history archival, each table in its own
transaction, with the figures a job run records."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marts import SQL_DIR
from marts.runner import MERGE_ORDER, MartRunner
from ordertrack.log import get_logger
from ordertrack.progress import Progress
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.timeparse import utc_naive
from ordertrack.warehouse.engine import LEDGER_TABLE, Execute, WarehouseEngine
from ordertrack.warehouse.sqlfiles import Relation, count_of, parse, render

log = get_logger(__name__)

RETENTION_DELETE = SQL_DIR / "maintenance" / "10_raw_retention.sql"
PAST_RETENTION = SQL_DIR / "maintenance" / "11_raw_past_retention.sql"


def trim_raw(engine: WarehouseEngine, registry: TableRegistry, now: datetime, hours: int) -> dict[str, dict[str, int]]:
    """Delete merged raw rows ingested more than `hours` before `now`; per table, the rows
    deleted and the rows past the cutoff kept because their batch is not merged yet."""
    cutoff = utc_naive(now) - timedelta(hours=hours)
    delete = parse(RETENTION_DELETE)
    out: dict[str, dict[str, int]] = {}
    for spec in registry:
        if not engine.raw_columns(spec):
            continue  # nothing landed for this table yet
        relations = _retention_relations(engine, spec)

        def step(execute: Execute, delete=delete, relations=relations) -> dict[str, int]:
            params: dict[str, Any] = {"cutoff": cutoff}
            past = execute(render(PAST_RETENTION, engine.dialect, relations), params)[0][0]
            due = execute(render(count_of(delete), engine.dialect, relations), params)[0][0]
            execute(render(delete, engine.dialect, relations), params)
            return {"deleted": int(due), "kept_unmerged": int(past - due)}

        out[spec.name] = engine.in_transaction(step)
        log.info("retention.trimmed", table=spec.raw_table, cutoff=cutoff.isoformat(), **out[spec.name])
    return out


def _retention_relations(engine: WarehouseEngine, spec: TableSpec) -> dict[str, Relation]:
    return {"__raw__": (spec.raw_schema, spec.raw_table), "__ledger__": (engine.raw_schema, LEDGER_TABLE)}


def archive_all(engine: WarehouseEngine, registry: TableRegistry,
                progress: Progress | None = None) -> dict[str, dict[str, int]]:
    """Move mart rows past the history cutoff into half-year history tables: tracking first,
    then the orders whose tracking has gone, then scan events; one transaction per mart.
    `progress`, if given, counts the marts done."""
    runner = MartRunner(registry, engine.dialect)
    out: dict[str, dict[str, int]] = {}
    if progress is not None:
        progress.update(total=len(MERGE_ORDER))
    for name in MERGE_ORDER:
        spec = registry.get(name)
        if engine.raw_columns(spec):
            def archive(execute: Execute, spec: TableSpec = spec) -> dict[str, int]:
                return runner.archive(execute, spec)

            out[name] = engine.in_transaction(archive)
        if progress is not None:
            progress.advance(1, table=name, moved=sum(out.get(name, {}).values()))
    return out
