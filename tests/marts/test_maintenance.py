"""The sidecar's warehouse jobs on a real (embedded) DuckDB: raw retention, VACUUM, archival."""

from __future__ import annotations

from datetime import datetime, timezone

from consumers.staging import stage
from marts.maintenance import archive_all, trim_raw
from marts.runner import MartRunner
from ordertrack.config import load_pipeline_config
from ordertrack.tables import TableRegistry
from ordertrack.warehouse.sqlfiles import transpile as render
from tests.marts.test_merge import ORDERS, SPATH, T0, TRACKING, Topic

REGISTRY = TableRegistry(load_pipeline_config())
DAY = 86400


def land(engine, spec, messages, merge: bool = True) -> str:
    after = MartRunner(REGISTRY, engine.dialect).after_landing if merge else None
    return engine.land(spec, spec.topic, stage(messages), after=after).batch_id


def age(engine, spec, batch_id: str, hours: float) -> None:
    """Pretend the batch was ingested `hours` ago."""
    engine.in_transaction(lambda ex: ex(render(
        f'UPDATE "{spec.raw_schema}"."{spec.raw_table}" SET _ingested_at = DATEADD(minute, -{int(hours * 60)}, GETDATE()) '
        "WHERE _batch_id = :b", engine.dialect), {"b": batch_id}))


def raw_ids(engine, spec) -> list[int]:
    return [r[0] for r in engine.query(f'SELECT order_id FROM "{spec.raw_schema}"."{spec.raw_table}" ORDER BY 1')]


def test_retention_trims_by_ingestion_time_every_table_and_leaves_unmerged_rows(engine):
    orders = Topic(ORDERS)
    # Orders: add_time never moves, so trimming by business time could never trim this table.
    old_merged = land(engine, ORDERS, [orders.message({"order_id": i, "add_time": T0, "partner_id": 1}) for i in (1, 2)])
    old_unmerged = land(engine, ORDERS, [orders.message({"order_id": 3, "add_time": T0, "partner_id": 1})], merge=False)
    recent = land(engine, ORDERS, [orders.message({"order_id": 4, "add_time": T0 - 300 * DAY, "partner_id": 1})])
    age(engine, ORDERS, old_merged, 25)
    age(engine, ORDERS, old_unmerged, 30)
    age(engine, ORDERS, recent, 23)
    tracking = Topic(TRACKING)
    t_old = land(engine, TRACKING, [tracking.message({"order_id": 9, "update_time": T0, "state": 1})])
    age(engine, TRACKING, t_old, 48)

    out = trim_raw(engine, REGISTRY, datetime.now(timezone.utc), hours=24)

    assert out["ecs_order_info"] == {"deleted": 2, "kept_unmerged": 1}
    assert out["uni_tracking_info"] == {"deleted": 1, "kept_unmerged": 0}
    assert out["uni_tracking_spath"] == {"deleted": 0, "kept_unmerged": 0}
    assert raw_ids(engine, ORDERS) == [3, 4] and raw_ids(engine, TRACKING) == []
    # The marts keep what was merged; the unmerged batch is still there for `marts run`.
    assert [r[0] for r in engine.query("SELECT order_id FROM settlement_ods.mart_ecs_order_info ORDER BY 1")] == [1, 2, 4]
    assert engine.unmerged_batches(ORDERS.topic) == [old_unmerged]
    # A second run finds nothing more to delete.
    again = trim_raw(engine, REGISTRY, datetime.now(timezone.utc), hours=24)
    assert again["ecs_order_info"] == {"deleted": 0, "kept_unmerged": 1}


def test_retention_cutoff_follows_the_configured_hours(engine):
    spath = Topic(SPATH)
    b = land(engine, SPATH, [spath.message({"order_id": 1, "traceSeq": 1, "pathTime": T0, "v": "a"})])
    age(engine, SPATH, b, 5)
    assert trim_raw(engine, REGISTRY, datetime.now(timezone.utc), hours=6)["uni_tracking_spath"]["deleted"] == 0
    assert trim_raw(engine, REGISTRY, datetime.now(timezone.utc), hours=4)["uni_tracking_spath"]["deleted"] == 1


def test_vacuum_gives_back_the_space_of_deleted_mart_rows(engine):
    spath = Topic(SPATH)
    land(engine, SPATH, [spath.message({"order_id": i, "traceSeq": 1, "pathTime": T0 + i, "v": "x" * 200})
                         for i in range(200_000)])
    if engine.dialect == "duckdb":
        used = lambda: engine.query("PRAGMA database_size")[0][4]  # noqa: E731 - used_blocks
        engine.query("CHECKPOINT")
    else:  # VACUUM gives back the empty pages at the end of the table (the rows deleted were the last written)
        used = lambda: engine.query("SELECT pg_relation_size('settlement_ods.mart_uni_tracking_spath')")[0][0]  # noqa: E731
    before = used()
    engine.in_transaction(lambda ex: ex("DELETE FROM settlement_ods.mart_uni_tracking_spath WHERE order_id >= 1000", {}))
    statements = engine.vacuum(list(REGISTRY))
    assert statements[-1] == "CHECKPOINT" or engine.dialect != "duckdb"
    assert 'VACUUM ANALYZE "settlement_ods"."mart_uni_tracking_spath"' in statements
    assert used() < before


def test_archival_is_a_job_of_its_own_and_moves_orders_after_their_tracking(engine):
    orders, tracking = Topic(ORDERS), Topic(TRACKING)
    land(engine, TRACKING, [tracking.message({"order_id": 1, "update_time": T0, "state": 4}),
                            tracking.message({"order_id": 3, "update_time": T0 + 299 * DAY, "state": 4}),
                            tracking.message({"order_id": 2, "update_time": T0 + 300 * DAY, "state": 1})])
    land(engine, ORDERS, [orders.message({"order_id": 1, "add_time": T0, "partner_id": 1}),
                          orders.message({"order_id": 3, "add_time": T0, "partner_id": 1}),
                          orders.message({"order_id": 2, "add_time": T0 + 300 * DAY, "partner_id": 1})])
    # Landing merged, and archived nothing.
    assert engine.query("SELECT COUNT(*) FROM settlement_ods.mart_uni_tracking_info")[0][0] == 3
    moved = archive_all(engine, REGISTRY)
    assert moved["uni_tracking_info"] == {"2026_h1": 1}
    # Orders 1 and 3 are past the cutoff, but only 1's tracking has gone to history.
    assert moved["ecs_order_info"] == {"2026_h1": 1}
    assert [r[0] for r in engine.query("SELECT order_id FROM settlement_ods.hist_ecs_order_info_2026_h1")] == [1]
    assert archive_all(engine, REGISTRY) == {"uni_tracking_info": {}, "ecs_order_info": {}, "uni_tracking_spath": {}}
