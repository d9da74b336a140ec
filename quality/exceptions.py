"""The exceptions table: findings recorded with a guard against duplicates, listed, resolved.

Every write names who and why: a check that no longer finds an order resolves its exception as
`dq`; an operator's `exceptions resolve` records their name, the time and their note.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from ordertrack.warehouse.engine import Execute, WarehouseEngine
from ordertrack.warehouse.sqlfiles import SOURCE_DIALECT, Relation, count_of, parse, render, render_text
from quality.catalog import exceptions_relation

DQ_SQL = Path(__file__).parent / "sql"
COLUMNS = ("order_id", "exception_type", "detected_at", "notes", "source_table", "kafka_topic", "kafka_partition",
           "kafka_offset", "resolved_at", "resolved_by", "resolution_notes")


def _counted(execute: Execute, statement: exp.Expr, dialect: str, relations: dict[str, Relation],
             params: dict[str, Any]) -> int:
    """Run a statement; return how many rows it touched (counted first, from its own tree)."""
    n = int(execute(render(count_of(statement), dialect, relations), params)[0][0])
    execute(render(statement, dialect, relations), params)
    return n


def record_query_findings(execute: Execute, dialect: str, relations: dict[str, Relation], *, check: str,
                          exception_type: str, findings: exp.Query, params: dict[str, Any],
                          source_table: str, sample: int) -> tuple[int, int, int, list[tuple]]:
    """Record the rows of a check query (order_id, notes) as exceptions and resolve the open ones it
    no longer finds, in the caller's transaction; return (found, new, resolved, first rows).
    The check runs once, into a temp table the bookkeeping reads."""
    execute(render(DQ_SQL / "collect_findings.sql", dialect, {**relations, "__findings__": findings}), params)
    p = {**params, "exception_type": exception_type, "source_table": source_table, "check_name": check}
    found = int(execute("SELECT COUNT(*) FROM dq_findings", {})[0][0])
    resolved = _counted(execute, parse(DQ_SQL / "resolve_cleared.sql"), dialect, relations, p)
    new = _counted(execute, parse(DQ_SQL / "record_findings.sql"), dialect, relations, p)
    first = execute(f"SELECT order_id, notes FROM dq_findings ORDER BY order_id LIMIT {int(sample)}", {}) if found else []
    execute("DROP TABLE dq_findings", {})
    return found, new, resolved, first


def record_table_finding(execute: Execute, dialect: str, relations: dict[str, Relation], *, exception_type: str,
                         source_table: str, notes: str) -> bool:
    """An open exception for a whole table; False when one was open already."""
    return bool(_counted(execute, parse(DQ_SQL / "record_table_finding.sql"), dialect, relations,
                         {"exception_type": exception_type, "source_table": source_table, "notes": notes}))


def resolve_table_finding(execute: Execute, dialect: str, relations: dict[str, Relation], *, check: str,
                          exception_type: str, source_table: str) -> int:
    return _counted(execute, parse(DQ_SQL / "resolve_table_finding.sql"), dialect, relations,
                    {"exception_type": exception_type, "source_table": source_table, "check_name": check})


def open_by_type(engine: WarehouseEngine, relations: dict[str, Relation]) -> dict[str, int]:
    rows = engine.query(render(DQ_SQL / "open_exceptions.sql", engine.dialect, relations))
    return {r[0]: int(r[1]) for r in rows}


def list_exceptions(engine: WarehouseEngine, *, include_resolved: bool = False, exception_type: str | None = None,
                    order_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first."""
    where = ["1 = 1"]
    params: dict[str, Any] = {}
    if not include_resolved:
        where.append("resolved_at IS NULL")
    if exception_type:
        where.append("exception_type = :exception_type")
        params["exception_type"] = exception_type
    if order_id is not None:
        where.append("order_id = :order_id")
        params["order_id"] = order_id
    sql = (f"SELECT {', '.join(COLUMNS)} FROM __exceptions__ WHERE {' AND '.join(where)} "
           f"ORDER BY detected_at DESC, order_id LIMIT {int(limit)}")
    rendered = render_text(sql, engine.dialect, exceptions_relation(engine))
    return [dict(zip(COLUMNS, r)) for r in engine.in_transaction(lambda execute: execute(rendered, params))]


def current_user() -> str:
    try:
        return os.environ.get("ORDERTRACK_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve(engine: WarehouseEngine, *, order_id: int | None, exception_type: str, note: str, by: str,
            source_table: str | None = None) -> int:
    """Resolve the open exceptions of one order (or, without an order, of one table) and type,
    recording who, when and why; return how many were resolved."""
    key = "order_id = :key" if order_id is not None else "order_id IS NULL AND source_table = :key"
    update = sqlglot.parse_one(
        "UPDATE __exceptions__ SET resolved_at = CURRENT_TIMESTAMP, resolved_by = :by, resolution_notes = :note "
        f"WHERE exception_type = :exception_type AND resolved_at IS NULL AND {key}", read=SOURCE_DIALECT)
    params = {"exception_type": exception_type, "key": order_id if order_id is not None else source_table,
              "by": by, "note": note}
    rel = exceptions_relation(engine)
    return engine.in_transaction(lambda execute: _counted(execute, update, engine.dialect, rel, params))
