"""`dq run`: each check in turn, its findings recorded in the exceptions table.

The warehouse checks are SQL files in `quality/sql/`; the two that look outside the warehouse
(extraction reads the source and the watermark topic, freshness the watermarks and the consumer
lag) get those through `DqInputs`, wired by the CLI, so this module imports no other stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from sqlglot import exp

from ordertrack import freshness
from ordertrack.config import DataQualityConfig
from ordertrack.errors import OrdertrackError, as_service_error
from ordertrack.identifiers import quote_ansi as q
from ordertrack.log import get_logger
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.warehouse.engine import WarehouseEngine
from ordertrack.warehouse.sqlfiles import Relation, parse, render
from ordertrack.watermarks.model import Watermark
from quality import catalog, exceptions, extraction
from quality.results import CheckResult, DqReport

log = get_logger(__name__)
DQ_SQL = Path(__file__).parent / "sql"

CHECKS = ("extraction", "alignment", "no_scan_events", "reactivated_without_order", "freshness", "consolidation")


@dataclass
class DqInputs:
    """What the checks read outside the warehouse."""

    source_versions: Callable[[TableSpec, int, int], set[tuple]]
    """(key..., cursor) of the source rows with start <= cursor < end."""
    watermark_history: Callable[[float], list[Watermark]]
    """Committed watermark records written since a unix time, oldest first."""
    latest_watermarks: Callable[[], dict[str, Watermark]]
    lag: Callable[[], dict[str, tuple[int, float]]]
    """Table -> (messages not landed, age in minutes of the oldest)."""
    connector_down: Callable[[], str | None] = lambda: None
    """Why the Debezium connector carries no changes (missing, failed, paused), or None."""
    dead_letters: Callable[[TableSpec, float], list[tuple[str, tuple]]] = lambda spec, since: []
    """(stage, version) of the table's dead letters written since a unix time: `producer` or
    `landing`, and (key..., cursor) of the row it carried, when the record still tells."""


@dataclass(frozen=True)
class _SqlCheck:
    file: str
    exception_type: str
    source_table: str
    params: Callable[[DataQualityConfig, int], dict[str, Any]]


SQL_CHECKS = {
    "alignment": _SqlCheck("tracking_scan_misaligned.sql", "tracking_scan_misaligned", "uni_tracking_info",
                           lambda c, now: {"settled_before": now - c.settle_minutes * 60}),
    "no_scan_events": _SqlCheck("order_without_scan_events.sql", "order_without_scan_events", "ecs_order_info",
                                lambda c, now: {"added_before": now - c.no_scan_grace_hours * 3600}),
    "reactivated_without_order": _SqlCheck("reactivated_without_order.sql", "reactivated_without_order",
                                           "uni_tracking_info", lambda c, now: {}),
}


class DataQuality:
    def __init__(self, engine: WarehouseEngine, registry: TableRegistry, cfg: DataQualityConfig,
                 inputs: DqInputs | None = None) -> None:
        self.engine, self.registry, self.cfg, self.inputs = engine, registry, cfg, inputs

    def run(self, checks: list[str] | None = None, now: datetime | None = None) -> DqReport:
        now = now or datetime.now(timezone.utc)
        names = checks or list(CHECKS)
        unknown = sorted(set(names) - set(CHECKS))
        if unknown:
            raise ValueError(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECKS)}")
        marts = catalog.relations(self.engine, self.registry)
        exc_only = catalog.exceptions_relation(self.engine)
        results = []
        for name in [c for c in CHECKS if c in names]:  # consolidation last: it sums up the others
            result = CheckResult(name)
            try:
                if name in SQL_CHECKS:
                    if marts is None:
                        result.status, result.message = "skipped", "the marts do not exist yet (nothing has landed)"
                    else:
                        self._sql_check(name, result, marts, int(now.timestamp()))
                else:
                    getattr(self, f"_{name}")(result, marts or exc_only, int(now.timestamp()))
            except Exception as exc:  # one failing check must not hide the others
                # our own errors are already one sentence; a lost service gets one; anything else
                # is named by its type
                if not isinstance(exc, OrdertrackError):
                    exc = as_service_error(exc) or exc
                result.status = "error"
                result.message = str(exc) if isinstance(exc, OrdertrackError) else f"{type(exc).__name__}: {exc}"
                log.error("dq.check.failed", check=name, error=result.message)
            if result.status == "ok" and result.found:
                result.status = "found"
            log.info("dq.check", check=name, status=result.status, found=result.found,
                     new_exceptions=result.new_exceptions, resolved=result.resolved_exceptions)
            results.append(result)
        return DqReport(results, exceptions.open_by_type(self.engine, exc_only))

    # -- warehouse checks ------------------------------------------------------------------------
    def _sql_check(self, name: str, result: CheckResult, rel: dict[str, Relation], now: int) -> None:
        check = SQL_CHECKS[name]
        findings = cast(exp.Query, parse(DQ_SQL / check.file))  # a check file is one SELECT
        params = check.params(self.cfg, now)

        result.found, result.new_exceptions, result.resolved_exceptions, sample = self.engine.in_transaction(
            lambda execute: exceptions.record_query_findings(
                execute, self.engine.dialect, rel, check=name, exception_type=check.exception_type,
                findings=findings, params=params, source_table=check.source_table, sample=self.cfg.sample_keys))
        result.details = [{"order_id": r[0], "notes": r[1]} for r in sample]
        result.message = f"{result.found} order(s): {check.exception_type}" if result.found else "none found"

    def _consolidation(self, result: CheckResult, rel: dict[str, Relation], now: int) -> None:
        rows = self.engine.query(render(DQ_SQL / "open_exceptions.sql", self.engine.dialect, rel))
        result.details = [{"exception_type": t, "open": int(n), "oldest": str(a), "newest": str(b)} for t, n, a, b in rows]
        result.found = sum(int(r[1]) for r in rows)
        result.message = ", ".join(f"{t}: {n}" for t, n, _, _ in rows) if rows else "no open exceptions"

    # -- checks that read outside the warehouse --------------------------------------------------
    def _needs_inputs(self) -> DqInputs:
        if self.inputs is None:
            raise RuntimeError("this check needs the source and Kafka, which were not given")
        return self.inputs

    def _table_finding(self, rel: dict[str, Relation], check: str, exception_type: str, table: str,
                       problem: str | None, result: CheckResult) -> None:
        def step(execute):
            if problem:
                return exceptions.record_table_finding(execute, self.engine.dialect, rel, exception_type=exception_type,
                                                       source_table=table, notes=problem), 0
            return False, exceptions.resolve_table_finding(execute, self.engine.dialect, rel, check=check,
                                                           exception_type=exception_type, source_table=table)

        new, resolved = self.engine.in_transaction(step)
        result.found += bool(problem)
        result.new_exceptions += int(new)
        result.resolved_exceptions += resolved

    def _extraction(self, result: CheckResult, rel: dict[str, Relation], now: int) -> None:
        inputs = self._needs_inputs()
        end = now - self.cfg.extraction_lag_minutes * 60
        start = end - self.cfg.extraction_window_minutes * 60
        # Records are written when a window commits, at most a transaction timeout after its end.
        marks = inputs.watermark_history(start - 3600)
        notes = []
        for spec in self.registry:
            if spec.binlog:
                # Change events carry no windows to count against the source; `dq reconcile`
                # compares a Debezium table key by key instead.
                result.details.append({"table": spec.name, "windows": 0, "windows_in_flight": 0,
                                       "note": "not checked: binlog CDC (Debezium) has no windows; use dq reconcile"})
                notes.append(f"{spec.name}: not checked (binlog CDC; dq reconcile covers it)")
                continue
            table_marks = [m for m in marks if m.table == spec.name]
            chain, in_flight = extraction.published_chain(table_marks, start, end, self.engine.next_offsets(spec.topic))
            if not chain:
                result.details.append({"table": spec.name, "windows": 0, "windows_in_flight": in_flight,
                                       "note": "no fully landed window inside the range"})
                continue
            a, b = chain[0].window_start, chain[-1].window_end
            assert a is not None  # published_chain keeps only windows with a start
            # Dead letters of rows in the range are written after the range's windows started.
            dead = extraction.DeadLetters.of(inputs.dead_letters(spec, a - 3600), a, b)
            figures = extraction.diagnose(spec.name, chain, in_flight, inputs.source_versions(spec, a, b),
                                          self._raw_versions(spec, a, b), self.cfg.sample_keys, dead)
            result.details.append({**asdict(figures), "hops": figures.hops})
            problem = figures.summary() if figures.hops else None
            self._table_finding(rel, "extraction", "extraction_gap", spec.name, problem, result)
            notes.append(f"{spec.name}: " + (", ".join(figures.hops) + " lost rows" if figures.hops else
                                             f"{figures.source_rows} rows, nothing lost"))
        result.message = "; ".join(notes) or "no fully landed window inside the range yet"

    def _raw_versions(self, spec: TableSpec, start: int, end: int) -> set[tuple]:
        cols = ", ".join(q(c) for c in (*spec.key_columns, spec.cursor_column))
        ph, cursor = self.engine.placeholder, q(spec.cursor_column)
        rows = self.engine.query(f"SELECT DISTINCT {cols} FROM {q(spec.raw_schema)}.{q(spec.raw_table)} "
                                 f"WHERE {cursor} >= {ph} AND {cursor} < {ph}", [start, end])
        return {tuple(r) for r in rows}

    def _freshness(self, result: CheckResult, rel: dict[str, Relation], now: int) -> None:
        inputs = self._needs_inputs()
        binlog = frozenset(s.name for s in self.registry.binlog())
        judged = freshness.judge(self.registry.names(), now, inputs.latest_watermarks(), inputs.lag(), self.cfg,
                                 binlog=binlog, connector_down=inputs.connector_down() if binlog else None)
        for f in judged:
            self._table_finding(rel, "freshness", "stale_watermark", f.table, f.stale_watermark, result)
            self._table_finding(rel, "freshness", "consumer_lag", f.table, f.lagging, result)
            self._table_finding(rel, "freshness", "connector_down", f.table, f.connector_down, result)
            result.details.append(asdict(f))
        problems = [f"{f.table}: {p}" for f in judged for p in (f.stale_watermark, f.lagging, f.connector_down) if p]
        result.message = "; ".join(problems) or "watermarks and lag within limits"
