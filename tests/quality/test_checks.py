"""The warehouse checks on each executing engine (DuckDB, PostgreSQL): each finds the defect planted for it, stays
silent on clean data, records exceptions once, and resolves them when the defect is gone."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from consumers.staging import stage
from marts.runner import MartRunner
from ordertrack.config import DataQualityConfig, load_pipeline_config
from ordertrack.tables import TableRegistry
from ordertrack.warehouse.sqlfiles import transpile as render
from quality import exceptions
from quality.runner import DataQuality
from tests.marts.test_merge import COLUMNS, ORDERS, SPATH, TRACKING, Topic
from tests.support.warehouses import ENGINES, open_warehouse

REGISTRY = TableRegistry(load_pipeline_config())
NOW = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)
N = int(NOW.timestamp())
HOUR, DAY = 3600, 86400
SQL_CHECKS = ["alignment", "no_scan_events", "reactivated_without_order", "consolidation"]


class Warehouse:
    def __init__(self, engine) -> None:
        self.engine = engine
        for spec in (SPATH, TRACKING, ORDERS):
            self.engine.ensure_raw_table(spec, COLUMNS[spec.name])
        self.topics = {s.name: Topic(s) for s in (SPATH, TRACKING, ORDERS)}
        self.runner = MartRunner(REGISTRY, engine.dialect)

    def land(self, spec, rows: list[dict]) -> None:
        msgs = [self.topics[spec.name].message(r) for r in rows]
        assert self.engine.land(spec, spec.topic, stage(msgs), after=self.runner.after_landing).merge_error is None

    def order(self, order_id: int, added: int, update: int | None = None, scans: tuple[int, ...] = ()) -> None:
        """An order with its tracking row (update_time = newest scan unless given) and scan events."""
        self.land(ORDERS, [{"order_id": order_id, "add_time": added, "partner_id": 1}])
        newest = max(scans) if scans else added
        self.land(TRACKING, [{"order_id": order_id, "update_time": update if update is not None else newest, "state": 1}])
        if scans:
            self.land(SPATH, [{"order_id": order_id, "traceSeq": i + 1, "pathTime": t, "v": "s"} for i, t in enumerate(scans)])

    def scan_in_history(self, order_id: int, path_time: int) -> None:
        """A scan event that lives only in a half-year history table (archived long ago)."""
        self.engine.in_transaction(lambda ex: (
            ex(self.runner.mart_ddl(SPATH, "hist_uni_tracking_spath_2025_h1"), {}),
            ex(render('INSERT INTO settlement_ods.hist_uni_tracking_spath_2025_h1 (order_id, "traceSeq", "pathTime", v, '
                      "_kafka_offset) VALUES (:o, 1, :t, 'old', 0)", self.engine.dialect), {"o": order_id, "t": path_time})))

    def dq(self, checks=None):
        return DataQuality(self.engine, REGISTRY, DataQualityConfig()).run(checks or SQL_CHECKS, now=NOW)

    def open(self, exception_type: str) -> list[int]:
        return sorted(r["order_id"] for r in exceptions.list_exceptions(self.engine, exception_type=exception_type))


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    with open_warehouse(request.param, tmp_path) as e:
        yield e


@pytest.fixture
def wh(engine) -> Warehouse:
    w = Warehouse(engine)
    # Clean data: scanned orders aligned with their tracking, one whose only scan is in history,
    # a fresh order not scanned yet (inside the grace period).
    w.order(1, N - 3 * DAY, scans=(N - 3 * DAY + 60, N - 2 * DAY))
    w.order(2, N - 2 * DAY, scans=(N - 2 * DAY + 600,))
    w.order(3, N - 400 * DAY, update=N - 399 * DAY)
    w.scan_in_history(3, N - 399 * DAY)
    w.order(4, N - 2 * HOUR)
    return w


def statuses(report) -> dict[str, tuple[str, int]]:
    return {c.check: (c.status, c.found) for c in report.checks}


def test_clean_data_raises_nothing(wh):
    report = wh.dq()
    assert statuses(report) == {c: ("ok", 0) for c in SQL_CHECKS}
    assert report.open_exceptions == {} and report.healthy


def test_alignment_finds_tracking_that_disagrees_with_its_newest_scan(wh):
    wh.order(10, N - DAY, update=N - DAY + 5, scans=(N - DAY + 60,))   # tracking behind its scans
    wh.order(11, N - HOUR, update=N - 60, scans=(N - 120,))            # misaligned, but too recent to judge
    report = wh.dq(["alignment"])
    assert statuses(report)["alignment"] == ("found", 1)
    assert report.checks[0].details[0]["order_id"] == 10
    assert wh.open("tracking_scan_misaligned") == [10]


def test_order_without_scan_events_looks_in_every_history_table(wh):
    wh.order(20, N - 2 * DAY)            # old enough, never scanned
    wh.order(21, N - 500 * DAY)           # only history has its scan: not an exception
    wh.scan_in_history(21, N - 499 * DAY)
    report = wh.dq(["no_scan_events"])
    assert statuses(report)["no_scan_events"] == ("found", 1)
    assert wh.open("order_without_scan_events") == [20]


def test_reactivated_order_without_order_row(wh):
    wh.land(TRACKING, [{"order_id": 30, "update_time": N - DAY, "state": 2}])
    wh.land(TRACKING, [{"order_id": 31, "update_time": N - DAY, "state": 2}])
    wh.land(ORDERS, [{"order_id": 31, "add_time": N - 300 * DAY, "partner_id": 1}])
    wh.engine.in_transaction(lambda ex: ex(
        "INSERT INTO settlement_ods.order_tracking_exceptions (order_id, exception_type, detected_at, resolved_at) "
        "SELECT o, 'reactivated_order', now(), now() FROM (VALUES (30), (31)) v(o)", {}))
    report = wh.dq(["reactivated_without_order"])
    assert statuses(report)["reactivated_without_order"] == ("found", 1)
    assert wh.open("reactivated_without_order") == [30]


def test_findings_are_recorded_once_and_resolved_when_the_defect_is_gone(wh):
    wh.order(20, N - 2 * DAY)
    first = wh.dq(["no_scan_events"]).checks[0]
    second = wh.dq(["no_scan_events"]).checks[0]
    assert (first.new_exceptions, second.new_exceptions, second.found) == (1, 0, 1)
    assert len(exceptions.list_exceptions(wh.engine, include_resolved=True, exception_type="order_without_scan_events")) == 1
    wh.land(SPATH, [{"order_id": 20, "traceSeq": 1, "pathTime": N - DAY, "v": "late scan"}])
    third = wh.dq(["no_scan_events"]).checks[0]
    assert (third.status, third.resolved_exceptions) == ("ok", 1)
    (row,) = exceptions.list_exceptions(wh.engine, include_resolved=True, exception_type="order_without_scan_events")
    assert row["resolved_by"] == "dq" and "no_scan_events" in row["resolution_notes"]


def test_consolidation_counts_open_exceptions_by_type_and_the_report_is_unhealthy(wh):
    wh.order(20, N - 2 * DAY)
    wh.order(22, N - 3 * DAY)
    wh.order(10, N - DAY, update=N - DAY + 5, scans=(N - DAY + 60,))
    report = wh.dq()
    consolidation = next(c for c in report.checks if c.check == "consolidation")
    assert {d["exception_type"]: d["open"] for d in consolidation.details} == {
        "order_without_scan_events": 2, "tracking_scan_misaligned": 1}
    assert report.open_exceptions == {"order_without_scan_events": 2, "tracking_scan_misaligned": 1}
    assert not report.healthy


def test_an_operator_resolves_an_exception_with_who_when_and_why(wh):
    wh.order(20, N - 2 * DAY)
    wh.dq(["no_scan_events"])
    n = exceptions.resolve(wh.engine, order_id=20, exception_type="order_without_scan_events",
                           note="parcel lost before first scan; refunded", by="li.wei")
    assert n == 1
    (row,) = exceptions.list_exceptions(wh.engine, include_resolved=True, order_id=20)
    assert (row["resolved_by"], row["resolution_notes"]) == ("li.wei", "parcel lost before first scan; refunded")
    assert row["resolved_at"] is not None
    assert exceptions.resolve(wh.engine, order_id=20, exception_type="order_without_scan_events", note="x", by="y") == 0


def test_mart_checks_skip_before_anything_has_landed_and_consolidation_still_runs(engine):
    report = DataQuality(engine, REGISTRY, DataQualityConfig()).run(SQL_CHECKS, now=NOW)
    assert statuses(report) == {"alignment": ("skipped", 0), "no_scan_events": ("skipped", 0),
                                "reactivated_without_order": ("skipped", 0), "consolidation": ("ok", 0)}
    assert report.healthy
