"""The warehouse relations the checks read: marts, their half-year history tables, exceptions."""

from __future__ import annotations

import re

from marts.sqlfiles import Relation, TableName
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, WarehouseEngine

TRACKING, ORDERS, SCAN_EVENTS = "uni_tracking_info", "ecs_order_info", "uni_tracking_spath"


def table_exists(engine: WarehouseEngine, schema: str, name: str) -> bool:
    ph = engine.placeholder
    return bool(engine.query(f"SELECT 1 FROM information_schema.tables WHERE table_schema = {ph} AND table_name = {ph}",
                             [schema, name]))


def history_tables(engine: WarehouseEngine, spec: TableSpec) -> list[TableName]:
    rows = engine.query(f"SELECT table_name FROM information_schema.tables WHERE table_schema = {engine.placeholder}",
                        [spec.mart_schema])
    pattern = re.compile(rf"^hist_{re.escape(spec.name)}_\d{{4}}_h[12]$")
    return [(spec.mart_schema, r[0]) for r in sorted(rows) if pattern.match(r[0])]


def mart_with_history(engine: WarehouseEngine, spec: TableSpec) -> list[TableName]:
    return [(spec.mart_schema, spec.mart_table), *history_tables(engine, spec)]


def exceptions_relation(engine: WarehouseEngine) -> dict[str, Relation]:
    return {"__exceptions__": (engine.mart_schema, EXCEPTIONS_TABLE)}


def relations(engine: WarehouseEngine, registry: TableRegistry) -> dict[str, Relation] | None:
    """Placeholder -> relation for the dq SQL files; None while a mart does not exist yet."""
    specs = {n: registry.get(n) for n in (TRACKING, ORDERS, SCAN_EVENTS)}
    if not all(table_exists(engine, s.mart_schema, s.mart_table) for s in specs.values()):
        return None
    return {
        "__tracking__": (specs[TRACKING].mart_schema, specs[TRACKING].mart_table),
        "__orders_mart__": (specs[ORDERS].mart_schema, specs[ORDERS].mart_table),
        "__orders__": mart_with_history(engine, specs[ORDERS]),
        "__scan_events__": mart_with_history(engine, specs[SCAN_EVENTS]),
        "__exceptions__": (engine.mart_schema, EXCEPTIONS_TABLE),
    }

