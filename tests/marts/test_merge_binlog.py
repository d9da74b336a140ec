"""Marts of Debezium tables on a real (embedded) DuckDB: newest by binlog position, deletes,
snapshot reads, and a table switched over from the poller (issue 12)."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timezone

import orjson
import pytest
import yaml

from consumers.envelopes import CDC_COLUMNS, unwrap
from consumers.staging import RawMessage, stage
from marts.maintenance import archive_all
from marts.runner import MartRunner
from ordertrack.config import PipelineConfig
from ordertrack.resources import resource_path
from ordertrack.tables import TableRegistry
from ordertrack.warehouse.types import Column
from tests.support.warehouses import ENGINES, open_warehouse

T0 = int(datetime(2026, 1, 10, tzinfo=timezone.utc).timestamp())
DAY = 86400
COLUMNS = [Column("order_id", "BIGINT"), Column("update_time", "BIGINT"), Column("state", "INTEGER")]
ORDER_COLUMNS = [Column("order_id", "BIGINT"), Column("add_time", "BIGINT"), Column("partner_id", "BIGINT")]


@pytest.fixture(params=ENGINES)
def warehouse(request, tmp_path):
    """Raw tables of tracking (the table under test) and orders (its merge heals reactivated
    orders), on each executing engine; called with the registry."""
    with ExitStack() as stack:
        def make(reg: TableRegistry):
            engine = stack.enter_context(open_warehouse(request.param, tmp_path))
            engine.ensure_raw_table(reg.get("uni_tracking_info"), [*COLUMNS, *CDC_COLUMNS])
            engine.ensure_raw_table(reg.get("ecs_order_info"), [*ORDER_COLUMNS, *CDC_COLUMNS])
            return engine

        yield make


def _raw(deletes: str = "hard") -> dict:
    raw = yaml.safe_load(resource_path("pipeline.yaml").read_text())
    for t in raw["tables"]:
        t["cdc_strategy"] = "debezium"
        t["deletes"] = deletes
    return raw


def registry(deletes: str = "hard") -> TableRegistry:
    return TableRegistry(PipelineConfig.model_validate(_raw(deletes)))


class Binlog:
    """Change events of the tracking table as Debezium writes them: one partition, positions rising."""

    def __init__(self) -> None:
        self.offset = 0
        self.pos = 1000

    def event(self, op: str, order_id: int, update_time: int, state: int, snapshot: str = "false",
              pos: int | None = None) -> RawMessage:
        row = {"order_id": order_id, "update_time": update_time, "state": state}
        if pos is None:
            self.pos += 100
        value = {"before": row if op == "d" else None, "after": None if op == "d" else row, "op": op,
                 "source": {"file": "binlog.000001", "pos": pos or self.pos, "row": 0, "ts_ms": 0, "snapshot": snapshot}}
        self.offset += 1
        return RawMessage(0, self.offset - 1, orjson.dumps(value))


@pytest.fixture
def setup(warehouse):
    reg = registry()
    spec = reg.get("uni_tracking_info")
    engine = warehouse(reg)
    runner = MartRunner(reg, engine.dialect)

    def land(*messages: RawMessage) -> None:
        result = engine.land(spec, spec.topic, stage(unwrap(messages)), after=runner.after_landing)
        assert result.merge_error is None and not result.rejected, result
        archive_all(engine, reg)

    def mart() -> dict[int, tuple]:
        tables = [spec.mart_table] + [r[0] for r in engine.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = {0} AND table_name LIKE {0}"
            .format(engine.placeholder),
            [spec.mart_schema, f"hist_{spec.name}_%"])]
        out = {}
        for t in tables:
            for order_id, update_time, state, op in engine.query(
                    f'SELECT order_id, update_time, state, cdc_op FROM "{spec.mart_schema}"."{t}"'):
                assert order_id not in out, f"key {order_id} twice in mart + history"
                out[order_id] = (update_time, state, op)
        return out

    return engine, spec, land, mart


def test_the_later_change_wins_even_with_an_older_cursor_in_one_batch_or_two(setup):
    engine, spec, land, mart = setup
    log = Binlog()
    # A writer's clock went back: the second update carries an older update_time.
    land(log.event("c", 1, T0, 1), log.event("u", 1, T0 + 5, 2), log.event("u", 1, T0 + 4, 3))
    assert mart()[1] == (T0 + 4, 3, "u")
    land(log.event("u", 1, T0 + 9, 4))
    land(log.event("u", 1, T0 + 8, 5))
    assert mart()[1] == (T0 + 8, 5, "u")


def test_a_delete_removes_the_key_from_the_mart_and_from_history_and_it_does_not_come_back(setup):
    engine, spec, land, mart = setup
    log = Binlog()
    land(log.event("c", 1, T0, 1), log.event("c", 2, T0 + 400 * DAY, 1))  # key 1 goes to history
    assert set(mart()) == {1, 2}
    assert engine.query(f'SELECT COUNT(*) FROM "{spec.mart_schema}"."{spec.mart_table}"')[0][0] == 1
    land(log.event("d", 1, T0, 1), log.event("u", 2, T0 + 400 * DAY + 1, 2), log.event("d", 2, T0 + 400 * DAY + 1, 2))
    assert mart() == {}
    land(log.event("c", 2, T0 + 401 * DAY, 7))  # inserted again later: a new row
    assert mart() == {2: (T0 + 401 * DAY, 7, "c")}


def test_a_snapshot_read_never_overrides_a_change_made_after_the_snapshot_began(setup):
    engine, spec, land, mart = setup
    log = Binlog()
    land(log.event("u", 1, T0 + 10, 2, pos=5000))
    land(log.event("r", 1, T0 + 20, 1, snapshot="true", pos=4000))  # read at an older position
    assert mart()[1] == (T0 + 10, 2, "u")


def test_a_table_switched_from_the_poller_keeps_one_row_per_key(setup):
    """Poller rows (no binlog position) in the mart, then change events: compared by cursor, and
    on an equal cursor the change event wins; an older change event never moves a key back."""
    engine, spec, land, mart = setup
    poller = {"order_id": 1, "update_time": T0 + 10, "state": 1}
    other = {"order_id": 2, "update_time": T0 + 50, "state": 1}
    # The poller's rows, landed from its own topic into the same raw table (cdc_* columns NULL).
    runner = MartRunner(registry(), engine.dialect)
    engine.land(spec, "kuaisong.uni_tracking_info",
                stage([RawMessage(0, 0, orjson.dumps(poller)), RawMessage(0, 1, orjson.dumps(other))]),
                after=runner.after_landing)
    log = Binlog()
    land(log.event("r", 1, T0 + 10, 9, snapshot="true"), log.event("u", 2, T0 + 40, 9))
    assert mart() == {1: (T0 + 10, 9, "r"), 2: (T0 + 50, 1, None)}


def test_soft_deletes_keep_the_row_marked(warehouse):
    reg = registry("soft")
    spec = reg.get("uni_tracking_info")
    engine = warehouse(reg)
    log = Binlog()
    for batch in ([log.event("c", 1, T0, 1)], [log.event("d", 1, T0, 1)]):
        engine.land(spec, spec.topic, stage(unwrap(batch)), after=MartRunner(reg, engine.dialect).after_landing)
    assert engine.query(f'SELECT order_id, cdc_op FROM "{spec.mart_schema}"."{spec.mart_table}"') == [(1, "d")]


def test_a_batch_that_landed_unmerged_merges_before_a_later_one_so_a_delete_stays_a_delete(setup):
    """Merged out of binlog order, an older update would meet a key a later delete had removed and
    put it back: the lander merges what landed unmerged (a merge that failed) first."""
    from consumers.lander import Lander
    from marts.runner import merge_unmerged
    from ordertrack.settings import load_settings

    engine, spec, land, mart = setup
    log = Binlog()
    land(log.event("c", 1, T0, 1))
    # The next batch's merge failed: it landed unmerged (what the lander's fallback does).
    engine.land(spec, spec.topic, stage(unwrap([log.event("u", 1, T0 + 1, 2)])), after=None)
    reg = registry()
    lander = Lander(engine, PipelineConfig.model_validate(_raw()), load_settings(),
                    after_landing=MartRunner(reg, engine.dialect).after_landing)
    lander.land(spec, [log.event("d", 1, T0 + 1, 2)])
    assert engine.unmerged_batches(spec.topic) == []
    merge_unmerged(engine, reg)  # the sidecar's merge job finds nothing left to put back
    assert mart() == {}


def test_deleting_an_archived_tracking_row_is_not_a_reactivation(setup):
    engine, spec, land, mart = setup
    log = Binlog()
    land(log.event("c", 1, T0, 1), log.event("c", 2, T0 + 400 * DAY, 1))  # key 1 goes to history
    land(log.event("d", 1, T0, 1))
    assert 1 not in mart()
    reactivations = engine.query(f"SELECT COUNT(*) FROM {spec.mart_schema}.order_tracking_exceptions "
                                 "WHERE exception_type = 'reactivated_order'")[0][0]
    assert reactivations == 0


def test_a_change_event_with_no_cursor_still_replaces_a_poller_row(setup):
    engine, spec, land, mart = setup
    runner = MartRunner(registry(), engine.dialect)
    engine.land(spec, "kuaisong.uni_tracking_info",
                stage([RawMessage(0, 0, orjson.dumps({"order_id": 1, "update_time": T0, "state": 1}))]),
                after=runner.after_landing)
    land(Binlog().event("u", 1, None, 9))
    assert mart() == {1: (None, 9, "u")}


def test_the_checks_leave_soft_deleted_rows_out(warehouse):
    """With `deletes: soft` the mart keeps a deleted order, marked: the source no longer has it, so
    an order without scan events that was deleted is no finding."""
    from ordertrack.config import DataQualityConfig
    from quality import exceptions
    from quality.runner import DataQuality

    reg = registry("soft")
    engine = warehouse(reg)
    engine.ensure_raw_table(reg.get("uni_tracking_spath"), [Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT"),
                                                           Column("pathTime", "BIGINT"), *CDC_COLUMNS])
    runner = MartRunner(reg, engine.dialect)
    orders = reg.get("ecs_order_info")

    def event(op: str, order_id: int, pos: int) -> RawMessage:
        row = {"order_id": order_id, "add_time": T0, "partner_id": 1}
        value = {"before": row if op == "d" else None, "after": None if op == "d" else row, "op": op,
                 "source": {"file": "binlog.000001", "pos": pos, "row": 0, "ts_ms": 0, "snapshot": "false"}}
        return RawMessage(0, pos, orjson.dumps(value))

    engine.land(orders, orders.topic, stage(unwrap([event("c", 1, 0), event("c", 2, 1)])), after=runner.after_landing)
    engine.land(orders, orders.topic, stage(unwrap([event("d", 1, 2)])), after=runner.after_landing)
    assert sorted(engine.query(f'SELECT order_id, cdc_op FROM "{orders.mart_schema}"."{orders.mart_table}"')) == [
        (1, "d"), (2, "c")]
    for spec in (reg.get("uni_tracking_info"), reg.get("uni_tracking_spath")):
        engine.in_transaction(lambda execute, spec=spec: runner.ensure_mart(execute, spec))
    now = datetime.fromtimestamp(T0 + 3 * DAY, timezone.utc)
    DataQuality(engine, reg, DataQualityConfig()).run(["no_scan_events"], now=now)
    open_ = sorted(r["order_id"] for r in exceptions.list_exceptions(engine, exception_type="order_without_scan_events"))
    assert open_ == [2]
