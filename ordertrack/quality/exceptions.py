"""The exceptions table: findings recorded with a guard against duplicates, listed, resolved.

Every write names who and why: a check that no longer finds an order resolves its exception as
`dq`; an operator's `exceptions resolve` records their name, the time and their note.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

from sqlglot import exp

from marts.sqlfiles import SQL_DIR, Relation, render, render_text
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, Execute, WarehouseEngine

DQ_SQL = SQL_DIR / "dq"
COLUMNS = ("order_id", "exception_type", "detected_at", "notes", "source_table", "kafka_topic", "kafka_partition",
           "kafka_offset", "resolved_at", "resolved_by", "resolution_notes")


def record_query_findings(execute: Execute, dialect: str, relations: dict[str, Relation], *, check: str,
                          exception_type: str, findings: exp.Query, params: dict[str, Any],
                          source_table: str) -> tuple[int, int, int]:
    """Record the rows of a check query (order_id, notes) as exceptions and resolve the open ones it
    no longer finds, in the caller's transaction; return (found, new, resolved)."""
    rel = {**relations, "__findings__": findings}
    found = execute(render(exp.select(exp.Count(this=exp.Star())).from_(
        exp.Subquery(this=findings.copy(), alias=exp.TableAlias(this=exp.to_identifier("f")))), dialect, rel), params)[0][0]
    p = {**params, "exception_type": exception_type, "source_table": source_table, "check_name": check}
    before = _open_count(execute, dialect, relations, exception_type)
    resolved_sql = render(DQ_SQL / "resolve_cleared.sql", dialect, rel)
    execute(resolved_sql, p)
    after_resolve = _open_count(execute, dialect, relations, exception_type)
    execute(render(DQ_SQL / "record_findings.sql", dialect, rel), p)
    after = _open_count(execute, dialect, relations, exception_type)
    return int(found), after - after_resolve, before - after_resolve


def record_table_finding(execute: Execute, dialect: str, relations: dict[str, Relation], *, exception_type: str,
                         source_table: str, notes: str) -> bool:
    """An open exception for a whole table; False when one was open already."""
    before = _open_count(execute, dialect, relations, exception_type)
    execute(render(DQ_SQL / "record_table_finding.sql", dialect, relations),
            {"exception_type": exception_type, "source_table": source_table, "notes": notes})
    return _open_count(execute, dialect, relations, exception_type) > before


def resolve_table_finding(execute: Execute, dialect: str, relations: dict[str, Relation], *, check: str,
                          exception_type: str, source_table: str) -> int:
    before = _open_count(execute, dialect, relations, exception_type)
    execute(render(DQ_SQL / "resolve_table_finding.sql", dialect, relations),
            {"exception_type": exception_type, "source_table": source_table, "check_name": check})
    return before - _open_count(execute, dialect, relations, exception_type)


def open_by_type(engine: WarehouseEngine, relations: dict[str, Relation]) -> dict[str, int]:
    rows = engine.query(render(DQ_SQL / "open_exceptions.sql", engine.dialect, relations))
    return {r[0]: int(r[1]) for r in rows}


def _open_count(execute: Execute, dialect: str, relations: dict[str, Relation], exception_type: str) -> int:
    q = exp.select(exp.Count(this=exp.Star())).from_("__exceptions__").where(
        "exception_type = :exception_type AND resolved_at IS NULL")
    return int(execute(render(q, dialect, relations), {"exception_type": exception_type})[0][0])


def _relations(engine: WarehouseEngine) -> dict[str, Relation]:
    return {"__exceptions__": (engine.mart_schema, EXCEPTIONS_TABLE)}


def list_exceptions(engine: WarehouseEngine, *, include_resolved: bool = False, exception_type: str | None = None,
                    order_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first."""
    where, params = ["1 = 1"], {}
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
    rendered = render_text(sql, engine.dialect, _relations(engine))
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
    match = f"exception_type = :exception_type AND resolved_at IS NULL AND {key}"
    rel = _relations(engine)
    count = render_text(f"SELECT COUNT(*) FROM __exceptions__ WHERE {match}", engine.dialect, rel)
    update = render_text(f"UPDATE __exceptions__ SET resolved_at = CURRENT_TIMESTAMP, resolved_by = :by, "
                         f"resolution_notes = :note WHERE {match}", engine.dialect, rel)
    params = {"exception_type": exception_type, "key": order_id if order_id is not None else source_table,
              "by": by, "note": note}

    def step(execute: Execute) -> int:
        n = int(execute(count, params)[0][0])
        if n:
            execute(update, params)
        return n

    return engine.in_transaction(step)
