"""The shared landing on every executing engine (DuckDB, PostgreSQL): the places where the
engines' own copies of the landing used to disagree."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import orjson
import pytest

from consumers.staging import RawMessage, stage
from ordertrack.config import load_pipeline_config
from ordertrack.tables import TableRegistry
from ordertrack.warehouse.sqlfiles import transpile as render
from ordertrack.warehouse.types import Column
from tests.support.warehouses import ENGINES, open_warehouse

REGISTRY = TableRegistry(load_pipeline_config())
SPATH = REGISTRY.get("uni_tracking_spath")
COLUMNS = [Column("order_id", "BIGINT"), Column("traceSeq", "BIGINT"), Column("pathTime", "BIGINT"),
           Column("weight", "DECIMAL(10,3)"), Column("note", "VARCHAR(16)")]


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    with open_warehouse(request.param, tmp_path) as e:
        yield e


def message(offset: int, **row) -> RawMessage:
    return RawMessage(0, offset, orjson.dumps({"traceSeq": 1, "pathTime": 1_800_000_000, **row}), "w")


def open_exceptions(engine) -> list[tuple]:
    return engine.query("SELECT order_id, kafka_offset, notes FROM settlement_ods.order_tracking_exceptions "
                        "WHERE resolved_at IS NULL ORDER BY kafka_offset")


def test_a_table_in_another_schema_than_the_targets_lands_each_offset_once(engine):
    """The ledger is written and read in the target's raw schema, whatever the table's own."""
    spec = dataclasses.replace(SPATH, raw_schema="elsewhere")
    engine.ensure_raw_table(spec, COLUMNS)
    batch = [message(i, order_id=i) for i in range(3)]
    assert engine.land(spec, spec.topic, stage(batch)).landed == 3
    again = engine.land(spec, spec.topic, stage(batch))
    assert (again.landed, again.skipped) == (0, 3)
    assert engine.query('SELECT COUNT(*) FROM "elsewhere"."uni_tracking_spath_raw"')[0][0] == 3
    assert engine.next_offsets(spec.topic) == {0: 3}


def test_a_rejected_message_names_its_order_and_gets_one_open_exceptions_row(engine):
    engine.ensure_raw_table(SPATH, COLUMNS)
    bad = [message(0, order_id=7, weight="1.0005"), message(1, order_id=8, pathTime="soon"), message(2, traceSeq=None)]
    result = engine.land(SPATH, SPATH.topic, stage(bad))
    assert [r["offset"] for r in result.rejected] == [0, 1, 2]
    rows = open_exceptions(engine)
    assert [(o, k) for o, k, _ in rows] == [(7, 0), (8, 1), (None, 2)]
    assert rows[0][2] == "the value of weight would be rounded in DECIMAL(10,3) (more than 3 decimal places)"
    # The same messages landing again (a ledger reset, a replay) open no second row.
    engine.in_transaction(lambda ex: ex("DELETE FROM settlement_public.ordertrack_ingest_ledger", {}))
    assert len(engine.land(SPATH, SPATH.topic, stage(bad)).rejected) == 3
    assert len(open_exceptions(engine)) == 3


def test_typed_values_land_exactly(engine):
    engine.ensure_raw_table(SPATH, COLUMNS)
    engine.land(SPATH, SPATH.topic, stage([message(0, order_id=1, weight="12.345", note="é"),
                                            message(1, order_id=2, weight=3, pathTime=None)]))
    rows = engine.query('SELECT order_id, "traceSeq", "pathTime", CAST(weight AS VARCHAR), note, _kafka_offset '
                        "FROM settlement_public.uni_tracking_spath_raw ORDER BY 1")
    assert rows == [(1, 1, 1_800_000_000, "12.345", "é", 0), (2, 1, None, "3.000", None, 1)]


@pytest.mark.integration
def test_a_wrong_postgres_password_stops_with_one_sentence_that_never_shows_it(make_env):
    env = make_env(warehouse="postgres")
    u = urlparse(env.warehouse_url)
    bad = u._replace(netloc=f"{u.username}:not-the-password-123@{u.hostname}:{u.port}").geturl()
    r = env.cli("marts", "run", WAREHOUSE_URL=bad)
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "not-the-password-123" not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Cannot connect to PostgreSQL" in r.stderr


@pytest.mark.integration
def test_an_engine_url_that_target_type_does_not_name_says_which_to_change(make_env):
    env = make_env()  # target.type duckdb
    r = env.cli("marts", "run", WAREHOUSE_URL="postgresql://u:secret-pw@127.0.0.1:1/db")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "set target.type to postgres" in r.stderr and "secret-pw" not in r.stderr


def test_offsets_relanded_into_a_replays_hole_replace_their_rows_once(engine):
    engine.ensure_raw_table(SPATH, COLUMNS)
    batch = [message(i, order_id=i) for i in range(5)]
    engine.land(SPATH, SPATH.topic, stage(batch))
    engine.in_transaction(lambda ex: ex(render(  # what `ordertrack replay` opens: a hole [1, 3) on partition 0
        "INSERT INTO settlement_public.ordertrack_replays (replay_id, table_name, topic, partition, from_offset, "
        "to_offset, next_offset, requested_at) VALUES ('r1', :t, :topic, 0, 1, 3, 1, GETDATE())", engine.dialect),
        {"t": SPATH.name, "topic": SPATH.topic}))
    assert engine.next_offsets(SPATH.topic) == {0: 1}
    undeclared = engine.land(SPATH, SPATH.topic, stage(batch[1:]))  # a reader that did not seek there
    assert (undeclared.landed, undeclared.skipped) == (0, 4)
    again = engine.land(SPATH, SPATH.topic, stage(batch[1:]), expected={0: 1})
    assert (again.landed, again.skipped) == (2, 2)
    assert engine.query("SELECT _kafka_offset, COUNT(*) FROM settlement_public.uni_tracking_spath_raw "
                        "GROUP BY _kafka_offset ORDER BY 1") == [(i, 1) for i in range(5)]
    assert engine.next_offsets(SPATH.topic) == {0: 5}
    assert engine.query("SELECT finished_at IS NOT NULL FROM settlement_public.ordertrack_replays") == [(True,)]


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_two_landers_of_one_topic_at_once_land_each_offset_once(engine):
    """A rebalance can leave the old owner of a partition mid-batch while the new one lands the
    same offsets: they take turns, and the second finds them landed."""
    engine.ensure_raw_table(SPATH, COLUMNS)
    batch = [message(i, order_id=i) for i in range(2000)]
    start = threading.Barrier(2)

    def land():
        start.wait(timeout=30)
        return engine.land(SPATH, SPATH.topic, stage(batch)).landed

    with ThreadPoolExecutor(2) as pool:
        landed = sorted(f.result() for f in [pool.submit(land), pool.submit(land)])
    assert landed == [0, 2000]
    assert engine.query("SELECT COUNT(*), COUNT(DISTINCT _kafka_offset) FROM settlement_public.uni_tracking_spath_raw") \
        == [(2000, 2000)]


def test_a_large_batch_with_poison_in_it_lands_the_rest_once_and_names_each_poison(engine):
    """A backfill batch is read in parts around its poison (issue 17): what lands and what is
    rejected, and the exceptions rows naming the rejected offsets, are as for a small batch."""
    engine.ensure_raw_table(SPATH, COLUMNS)
    batch = [message(i, order_id=i) for i in range(5000)]
    batch[1234] = dataclasses.replace(batch[1234], value=b'{"order_id": 1234, "traceSeq": ')
    batch[3000] = message(3000, order_id=3000, weight="1.0005")
    result = engine.land(SPATH, SPATH.topic, stage(batch))
    assert (result.landed, [(r["offset"], r["value"]) for r in result.rejected]) == (
        4998, [(1234, '{"order_id": 1234, "traceSeq": '), (3000, batch[3000].value.decode())])
    assert [(o, k) for o, k, _ in open_exceptions(engine)] == [(None, 1234), (3000, 3000)]
    assert engine.query("SELECT COUNT(*), COUNT(DISTINCT _kafka_offset), SUM(order_id) "
                        "FROM settlement_public.uni_tracking_spath_raw") == [(4998, 4998, sum(range(5000)) - 4234)]
