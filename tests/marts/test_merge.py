"""The marts on a real (embedded) DuckDB: newer wins, history, reactivation, SQL for both engines."""

from __future__ import annotations

import zlib
from datetime import datetime, timezone

import orjson
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.lander import Lander
from consumers.staging import RawMessage, stage
from marts.maintenance import archive_all
from marts.runner import MERGE_ORDER, SQL_DIR, MartRunner, MartSql, half_year, merge_files
from ordertrack.config import load_pipeline_config
from ordertrack.settings import load_settings
from ordertrack.tables import TableRegistry
from ordertrack.warehouse.duckdb_engine import DuckDBEngine
from ordertrack.warehouse.engine import MergeFailed
from ordertrack.warehouse.types import Column

REGISTRY = TableRegistry(load_pipeline_config())
SPATH = REGISTRY.get("uni_tracking_spath")
TRACKING = REGISTRY.get("uni_tracking_info")
ORDERS = REGISTRY.get("ecs_order_info")
DAY = 86400
T0 = int(datetime(2026, 1, 10, tzinfo=timezone.utc).timestamp())

COLUMNS = {
    SPATH.name: [Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT"), Column("pathTime", "BIGINT"), Column("v", "VARCHAR")],
    TRACKING.name: [Column("order_id", "BIGINT"), Column("update_time", "BIGINT"), Column("state", "INTEGER")],
    ORDERS.name: [Column("order_id", "BIGINT"), Column("add_time", "BIGINT"), Column("partner_id", "BIGINT")],
}


def runner(engine=None) -> MartRunner:
    return MartRunner(REGISTRY, engine.dialect if engine is not None else "duckdb")


class Topic:
    """Messages of one table topic, with per-partition offsets as Kafka would give them."""

    def __init__(self, spec) -> None:
        self.spec = spec
        self.next = {0: 0, 1: 0}

    def message(self, row: dict) -> RawMessage:
        key = orjson.dumps([row[k] for k in self.spec.key_columns])
        p = zlib.crc32(key) % 2  # every version of a key on one partition
        m = RawMessage(p, self.next[p], orjson.dumps(row), "w")
        self.next[p] += 1
        return m


def land(engine, spec, messages) -> None:
    """Land and merge a batch, then archive as the scheduler's `archive` job does."""
    result = engine.land(spec, spec.topic, stage(messages), after=runner(engine).after_landing)
    assert result.merge_error is None, result.merge_error
    archive_all(engine, REGISTRY)


def mart_and_history(engine, spec) -> list[tuple]:
    tables = [spec.mart_table, *[r[0] for r in engine.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = {0} AND table_name LIKE {0}"
        .format(engine.placeholder),
        [spec.mart_schema, f"hist_{spec.name}_%"])]]
    rows = []
    for t in tables:
        rows += engine.query(f'SELECT order_id, "traceSeq", "pathTime", _kafka_offset, v FROM "{spec.mart_schema}"."{t}"')
    return sorted(rows)


# Few keys and few distinct days: equal cursors (the offset decides) and versions on both
# sides of the 180-day history cutoff are common.
versions = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 2), st.sampled_from([0, 1, 2, 190, 200, 390, 400]), st.text("ab", max_size=2)),
    min_size=1, max_size=60,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(versions=versions, cuts=st.lists(st.floats(0, 1), max_size=8), replays=st.lists(st.integers(0, 59), max_size=4))
def test_marts_plus_history_hold_the_latest_version_of_every_key(tmp_path_factory, versions, cuts, replays):
    engine = DuckDBEngine(tmp_path_factory.mktemp("prop") / "w.duckdb")
    engine.ensure_raw_table(SPATH, COLUMNS[SPATH.name])
    topic = Topic(SPATH)
    # Days apart (up to 400), so history archival happens; out-of-order cursors are common.
    messages = [topic.message({"order_id": o, "traceSeq": s, "pathTime": T0 + d * DAY, "v": v}) for o, s, d, v in versions]
    bounds = sorted({0, len(messages), *[int(c * len(messages)) for c in cuts]})
    batches = [messages[a:b] for a, b in zip(bounds, bounds[1:])]
    for r in replays:
        # Redelivery: messages already delivered come again (Kafka never skips ahead within a
        # partition, which the ledger relies on), e.g. after a rebalance or a lost commit.
        at = 1 + r % len(batches)
        delivered = [m for b in batches[:at] for m in b]
        if delivered:
            start = r % len(delivered)
            batches.insert(at, delivered[start:start + 5])
    for batch in batches:
        land(engine, SPATH, batch)
    latest: dict[tuple, tuple] = {}
    for m in messages:
        row = orjson.loads(m.value)
        key = (row["order_id"], row["traceSeq"])
        version = (row["pathTime"], m.offset, row["v"])
        if key not in latest or version[:2] > latest[key][:2]:
            latest[key] = version
    expected = sorted((k[0], k[1], v[0], v[1], v[2]) for k, v in latest.items())
    assert mart_and_history(engine, SPATH) == expected


def test_archival_across_a_half_year_boundary_creates_the_table_and_a_retry_moves_nothing(engine):
    topic = Topic(SPATH)
    june, july, newest = T0 + 150 * DAY, T0 + 180 * DAY, T0 + 400 * DAY
    land(engine, SPATH, [topic.message({"order_id": i, "traceSeq": 1, "pathTime": june, "v": "a"}) for i in range(5)]
         + [topic.message({"order_id": 10 + i, "traceSeq": 1, "pathTime": july, "v": "b"}) for i in range(3)]
         + [topic.message({"order_id": 99, "traceSeq": 1, "pathTime": newest, "v": "c"})])
    tables = {r[0] for r in engine.query("SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'hist_%'")}
    assert tables == {"hist_uni_tracking_spath_2026_h1", "hist_uni_tracking_spath_2026_h2"}
    assert half_year(june).name == "2026_h1" and half_year(july).name == "2026_h2"
    counts = lambda: [engine.query(f'SELECT COUNT(*) FROM "settlement_ods"."{t}"')[0][0]  # noqa: E731
                      for t in ("mart_uni_tracking_spath", "hist_uni_tracking_spath_2026_h1", "hist_uni_tracking_spath_2026_h2")]
    assert counts() == [1, 5, 3]
    moved = engine.in_transaction(lambda ex: runner(engine).archive(ex, SPATH))
    assert moved == {} and counts() == [1, 5, 3]


def test_a_reactivated_order_gets_its_order_row_back(engine):
    orders, tracking = Topic(ORDERS), Topic(TRACKING)
    old, new = T0, T0 + 300 * DAY
    land(engine, TRACKING, [tracking.message({"order_id": 1, "update_time": old, "state": 4}),
                            tracking.message({"order_id": 2, "update_time": new, "state": 1})])
    land(engine, ORDERS, [orders.message({"order_id": 1, "add_time": old, "partner_id": 7}),
                          orders.message({"order_id": 2, "add_time": new, "partner_id": 7})])
    ids = lambda t: [r[0] for r in engine.query(f'SELECT order_id FROM "settlement_ods"."{t}" ORDER BY 1')]  # noqa: E731
    assert ids("mart_uni_tracking_info") == [2] and ids("hist_uni_tracking_info_2026_h1") == [1]
    assert ids("mart_ecs_order_info") == [2] and ids("hist_ecs_order_info_2026_h1") == [1]
    # Order 1 is scanned again.
    land(engine, TRACKING, [tracking.message({"order_id": 1, "update_time": new + 60, "state": 2})])
    assert ids("mart_uni_tracking_info") == [1, 2] and ids("hist_uni_tracking_info_2026_h1") == []
    assert ids("mart_ecs_order_info") == [1, 2] and ids("hist_ecs_order_info_2026_h1") == []
    exc = engine.query("SELECT order_id, exception_type, resolved_at IS NOT NULL FROM settlement_ods.order_tracking_exceptions")
    assert exc == [(1, "reactivated_order", True)]


def test_a_null_order_id_in_the_tracking_mart_does_not_stop_order_archival(engine):
    orders, tracking = Topic(ORDERS), Topic(TRACKING)
    land(engine, TRACKING, [tracking.message({"order_id": 2, "update_time": T0 + 300 * DAY, "state": 1})])
    engine.in_transaction(lambda ex: ex(
        'INSERT INTO settlement_ods.mart_uni_tracking_info (order_id, update_time, state, _kafka_offset) VALUES (NULL, 1, 0, 0)', {}))
    land(engine, ORDERS, [orders.message({"order_id": 1, "add_time": T0, "partner_id": 1}),
                          orders.message({"order_id": 2, "add_time": T0 + 300 * DAY, "partner_id": 1})])
    assert [r[0] for r in engine.query('SELECT order_id FROM "settlement_ods"."hist_ecs_order_info_2026_h1"')] == [1]


def test_a_failed_merge_lands_the_batch_and_marts_run_merges_it_later(engine):
    topic = Topic(SPATH)

    def broken(execute, spec, batch_id):
        raise RuntimeError("merge bug")

    message = topic.message({"order_id": 1, "traceSeq": 1, "pathTime": T0, "v": "x"})
    with pytest.raises(MergeFailed):  # the engine rolls the batch back; the lander lands it unmerged
        engine.land(SPATH, SPATH.topic, stage([message]), after=broken)
    assert engine.next_offsets(SPATH.topic) == {}
    result = Lander(engine, load_pipeline_config(), load_settings(), after_landing=broken).land(SPATH, [message])
    assert result.landed == 1 and result.merge_error == "RuntimeError: merge bug"
    assert engine.unmerged_batches(SPATH.topic) == [result.batch_id]
    r = runner(engine)
    engine.in_transaction(lambda ex: (r.after_landing(ex, SPATH, result.batch_id), engine.mark_merged(ex, result.batch_id)))
    assert engine.unmerged_batches(SPATH.topic) == []
    assert engine.query('SELECT order_id, v FROM settlement_ods.mart_uni_tracking_spath') == [(1, "x")]


@pytest.mark.parametrize("table", MERGE_ORDER)
@pytest.mark.parametrize("dialect", ["redshift", "duckdb"])
def test_every_sql_file_renders_and_the_redshift_text_parses_back(table, dialect):
    spec = REGISTRY.get(table)
    r = MartSql(spec, REGISTRY, dialect, history=[f"hist_{table}_2025_h2", f"hist_{table}_2026_h1"])
    files = [*merge_files(table), *sorted((SQL_DIR / "history").glob("*.sql"))]
    assert len(files) >= 7
    for f in files:
        text = r.render(f, hist=f"hist_{table}_2026_h1")
        assert "__" not in text.replace("_kafka", "").replace("_batch", "")  # no placeholder left
        sqlglot.parse_one(text, read=dialect)


def test_redshift_marts_keep_the_old_models_layout():
    ddl = MartRunner(REGISTRY, "redshift").mart_ddl(REGISTRY.get("ecs_order_info"))
    assert 'DISTKEY("order_id") COMPOUND SORTKEY("partner_id", "add_time", "order_id")' in ddl
    sqlglot.parse_one(ddl, read="redshift")
    hist = MartRunner(REGISTRY, "redshift").mart_ddl(TRACKING, "hist_uni_tracking_info_2026_h1")
    assert '"hist_uni_tracking_info_2026_h1" (LIKE "settlement_public"."uni_tracking_info_raw")' in hist
