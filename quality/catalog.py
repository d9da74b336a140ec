"""The warehouse relations the checks read: marts, their half-year history tables, exceptions."""

from __future__ import annotations

from sqlglot import exp

from marts import runner
from marts.runner import ORDERS, SCAN_EVENTS, TRACKING
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, WarehouseEngine
from ordertrack.warehouse.sqlfiles import Relation, TableName, union_all


def table_exists(engine: WarehouseEngine, schema: str, name: str) -> bool:
    ph = engine.placeholder
    return bool(engine.query(f"SELECT 1 FROM information_schema.tables WHERE table_schema = {ph} AND table_name = {ph}",
                             [schema, name]))


def mart_with_history(engine: WarehouseEngine, spec: TableSpec) -> list[TableName]:
    """The mart and every half-year history table of it found in the catalog."""
    history = engine.in_transaction(lambda execute: runner.history_tables(execute, engine.dialect, spec))
    return [(spec.mart_schema, spec.mart_table), *((spec.mart_schema, h) for h in history)]


def exceptions_relation(engine: WarehouseEngine) -> dict[str, Relation]:
    return {"__exceptions__": (engine.mart_schema, EXCEPTIONS_TABLE)}


def relations(engine: WarehouseEngine, registry: TableRegistry) -> dict[str, Relation] | None:
    """Placeholder -> relation for the dq SQL files; None while a mart does not exist yet."""
    specs = {n: registry.get(n) for n in (TRACKING, ORDERS, SCAN_EVENTS)}
    if not all(table_exists(engine, s.mart_schema, s.mart_table) for s in specs.values()):
        return None
    return {
        "__tracking__": live(specs[TRACKING], [(specs[TRACKING].mart_schema, specs[TRACKING].mart_table)]),
        "__orders_mart__": live(specs[ORDERS], [(specs[ORDERS].mart_schema, specs[ORDERS].mart_table)]),
        "__orders__": live(specs[ORDERS], mart_with_history(engine, specs[ORDERS])),
        "__scan_events__": live(specs[SCAN_EVENTS], mart_with_history(engine, specs[SCAN_EVENTS])),
        "__exceptions__": (engine.mart_schema, EXCEPTIONS_TABLE),
    }


def live(spec: TableSpec, tables: list[TableName]) -> Relation:
    """The rows the checks judge: with `deletes: soft` a Debezium mart keeps deleted rows, marked
    `cdc_op = 'd'`; they are gone from the source and left out here."""
    if not (spec.binlog and spec.deletes == "soft"):
        return tables[0] if len(tables) == 1 else tables
    rows = union_all(tables).subquery("m")
    return exp.select("*").from_(rows).where("COALESCE(m.cdc_op, '') <> 'd'")

