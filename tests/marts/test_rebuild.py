"""`ordertrack marts rebuild`: a mart (and its history) recomputed from raw, through the CLI, on
each test's own DuckDB warehouse. Batches are landed directly, as in test_merge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot

from consumers.staging import stage
from marts.maintenance import archive_all
from marts.rebuild import rebuild_files
from marts.runner import MERGE_ORDER, MartRunner, MartSql
from ordertrack.tables import TableRegistry
from tests.marts.test_merge import COLUMNS, DAY, REGISTRY, T0, Topic

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))
SPATH_TABLE, TRACKING_TABLE = "uni_tracking_spath", "uni_tracking_info"


class Warehouse:
    """One test's pipeline env, with helpers to land batches straight into its warehouse."""

    def __init__(self, env) -> None:
        self.env = env
        self.engine = env.engine()
        self.registry = TableRegistry(env.config)
        self.topics = {}
        for spec in self.registry:
            self.engine.ensure_raw_table(spec, COLUMNS[spec.name])
            self.topics[spec.name] = Topic(spec)

    def land(self, table: str, rows: list[dict]) -> None:
        """Land and merge one batch, then archive as the scheduler's `archive` job does."""
        spec = self.registry.get(table)
        messages = [self.topics[table].message(r) for r in rows]
        result = self.engine.land(spec, spec.topic, stage(messages), after=MartRunner(self.registry, "duckdb").after_landing)
        assert result.merge_error is None, result.merge_error
        archive_all(self.engine, self.registry)

    def execute(self, sql: str) -> None:
        self.engine.in_transaction(lambda ex: ex(sql, {}))

    def raw(self, table: str) -> str:
        spec = self.registry.get(table)
        return f'"{spec.raw_schema}"."{spec.raw_table}"'

    def mart(self, table: str) -> str:
        spec = self.registry.get(table)
        return f'"{spec.mart_schema}"."{spec.mart_table}"'

    def snapshot(self, table: str) -> dict[str, list[tuple]]:
        """Every row of the mart and of each history table, by table."""
        spec = self.registry.get(table)
        names = [spec.mart_table, *[r[0] for r in self.engine.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name LIKE ? ORDER BY 1",
            [spec.mart_schema, f"hist_{spec.name}_%"])]]
        return {n: sorted(self.engine.query(f'SELECT * FROM "{spec.mart_schema}"."{n}"')) for n in names}

    def rebuild(self, *args: str) -> subprocess.CompletedProcess:
        return self.env.cli("marts", "rebuild", *args)

    def rebuild_json(self, *args: str) -> dict[str, dict]:
        r = self.rebuild(*args, "--json")
        assert r.returncode == 0, r.stderr
        return {t["table"]: t for t in json.loads(r.stdout)}


def scan(order_id: int, day: float, v: str, seq: int = 1) -> dict:
    return {"order_id": order_id, "traceSeq": seq, "pathTime": int(T0 + day * DAY), "v": v}


def land_history(w: Warehouse) -> None:
    """Scan events over 400 days in three batches, some keys updated later: the mart holds the
    recent ones, two half-year history tables the rest."""
    w.land(SPATH_TABLE, [scan(i, 10 + i, "a") for i in range(1, 6)] + [scan(i, 190, "b") for i in range(6, 9)])
    w.land(SPATH_TABLE, [scan(1, 300, "a2"), scan(6, 195, "b2"), scan(20, 400, "c")])
    w.land(SPATH_TABLE, [scan(21, 399, "c", seq=s) for s in (1, 2)])


@pytest.mark.integration
def test_an_emptied_mart_is_restored_exactly_and_tables_run_in_merge_order(make_env):
    w = Warehouse(make_env())
    land_history(w)
    w.land(TRACKING_TABLE, [{"order_id": i, "update_time": T0 + 400 * DAY, "state": 1} for i in range(1, 4)])
    spath, tracking = w.snapshot(SPATH_TABLE), w.snapshot(TRACKING_TABLE)
    assert len(spath) == 3 and all(spath.values())  # the mart and two history tables hold rows
    w.execute(f"DELETE FROM {w.mart(SPATH_TABLE)}")
    w.execute(f"DELETE FROM {w.mart(TRACKING_TABLE)}")
    # As a merge that failed leaves them: the rebuild merges their rows, and says so in the ledger.
    ledger = '"settlement_public"."ordertrack_ingest_ledger"'
    w.execute(f"UPDATE {ledger} SET merged_at = NULL")

    r = w.rebuild("--table", SPATH_TABLE, "--table", TRACKING_TABLE, "--json")

    assert r.returncode == 0, r.stderr
    reports = json.loads(r.stdout)
    assert [t["table"] for t in reports] == [TRACKING_TABLE, SPATH_TABLE]  # MERGE_ORDER, not the command line's
    assert w.snapshot(SPATH_TABLE) == spath and w.snapshot(TRACKING_TABLE) == tracking
    s = reports[1]
    mart_rows = len(spath[w.registry.get(SPATH_TABLE).mart_table])
    assert s["before"]["mart_rows"] == 0 and s["after"]["mart_rows"] == mart_rows
    assert s["keys_missing"] == s["mart_rows_changed"] == mart_rows
    assert s["before"]["history_rows"] == s["after"]["history_rows"] == {
        n: len(rows) for n, rows in spath.items() if n.startswith("hist_")}
    assert s["raw_keys"] == sum(len(rows) for rows in spath.values())  # one row a key, mart or history
    assert s["newer_than_mart"] == s["newer_than_history"] == 0 and s["archived"] == {}
    assert s["batches_marked_merged"] > 0
    assert w.engine.query(f"SELECT COUNT(*) FROM {ledger} WHERE merged_at IS NULL") == [(0,)]


@pytest.mark.integration
def test_raw_rows_without_a_batch_id_reach_the_mart_by_rebuild_and_not_by_marts_run(make_env):
    w = Warehouse(make_env())
    w.land(SPATH_TABLE, [scan(i, 1, "v1") for i in range(1, 6)])
    before = w.snapshot(SPATH_TABLE)
    # Restored from a snapshot or loaded by hand: newer versions of keys 1 and 2, and a new key 9,
    # in raw with no batch id, so the ledger knows nothing to merge.
    raw = w.raw(SPATH_TABLE)
    w.execute(f"INSERT INTO {raw} SELECT * REPLACE (\"pathTime\" + 60 AS \"pathTime\", 'late' AS v, NULL AS _batch_id) "
              f"FROM {raw} WHERE order_id IN (1, 2)")
    w.execute(f"INSERT INTO {raw} SELECT * REPLACE (9 AS order_id, 'new' AS v, NULL AS _batch_id) FROM {raw} "
              "WHERE order_id = 3")

    run = w.env.cli("marts", "run")
    assert run.returncode == 0, run.stderr
    assert w.snapshot(SPATH_TABLE) == before

    report = w.rebuild_json("--table", SPATH_TABLE)[SPATH_TABLE]

    mart = w.engine.query(f'SELECT order_id, v FROM {w.mart(SPATH_TABLE)} ORDER BY 1')
    assert mart == [(1, "late"), (2, "late"), (3, "v1"), (4, "v1"), (5, "v1"), (9, "new")]
    assert (report["keys_missing"], report["newer_than_mart"], report["mart_rows_changed"]) == (1, 2, 3)
    assert (report["before"]["mart_rows"], report["after"]["mart_rows"], report["raw_rows"]) == (5, 6, 8)
    # Run again: nothing left to change, and nothing moves.
    settled = w.snapshot(SPATH_TABLE)
    assert w.rebuild_json("--table", SPATH_TABLE)[SPATH_TABLE]["mart_rows_changed"] == 0
    assert w.snapshot(SPATH_TABLE) == settled


@pytest.mark.integration
def test_a_dry_run_counts_what_would_change_and_changes_nothing(make_env):
    w = Warehouse(make_env())
    land_history(w)
    raw = w.raw(SPATH_TABLE)
    # Key 2 (in history) and key 20 (in the mart) have newer versions in raw; 30 and 31 are new keys.
    w.execute(f"INSERT INTO {raw} SELECT * REPLACE (\"pathTime\" + 1 AS \"pathTime\", NULL AS _batch_id) FROM {raw} "
              "WHERE order_id IN (2, 20)")
    w.execute(f"INSERT INTO {raw} SELECT * REPLACE (order_id + 10 AS order_id, NULL AS _batch_id) FROM {raw} "
              "WHERE order_id IN (20, 21) AND \"traceSeq\" = 1")
    before = w.snapshot(SPATH_TABLE)

    r = w.rebuild("--table", SPATH_TABLE, "--dry-run", "--json")

    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)[0]
    assert w.snapshot(SPATH_TABLE) == before
    assert report["dry_run"] is True and report["after"] is None
    assert (report["keys_missing"], report["newer_than_mart"], report["newer_than_history"]) == (2, 1, 1)
    assert report["mart_rows_changed"] == 4
    assert report["before"]["mart_rows"] == len(before[w.registry.get(SPATH_TABLE).mart_table])
    text = w.rebuild("--table", SPATH_TABLE, "--dry-run")
    assert text.returncode == 0 and "dry run" in text.stdout, text.stderr
    assert w.snapshot(SPATH_TABLE) == before


@pytest.mark.integration
def test_full_refuses_while_raw_lacks_keys_of_the_mart_or_history(make_env):
    w = Warehouse(make_env())
    land_history(w)
    # Retention trimmed the raw rows of key 20 (in the mart) and key 3 (in history).
    w.execute(f"DELETE FROM {w.raw(SPATH_TABLE)} WHERE order_id IN (3, 20)")
    before = w.snapshot(SPATH_TABLE)

    for args in (("--full",), ("--full", "--dry-run"), ("--full", "--json")):
        r = w.rebuild("--table", SPATH_TABLE, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "2 keys" in errors[0] and "ordertrack replay" in errors[0], r.stderr
        assert "Traceback" not in r.stderr and r.stdout == ""
        assert w.snapshot(SPATH_TABLE) == before
    # Without --full nothing is lost: the trimmed keys stay.
    assert w.rebuild_json("--table", SPATH_TABLE)[SPATH_TABLE]["mart_rows_changed"] == 0
    assert w.snapshot(SPATH_TABLE) == before


@pytest.mark.integration
def test_full_rebuilds_the_mart_and_its_history_split_from_raw(make_env):
    w = Warehouse(make_env())
    land_history(w)
    good = w.snapshot(SPATH_TABLE)
    hist = [n for n in good if n.startswith("hist_")]
    assert len(hist) == 2
    spec = w.registry.get(SPATH_TABLE)
    # Damage a merge could never repair (same versions, other values), and a stray copy of a
    # history row in the mart.
    w.execute(f"UPDATE \"{spec.mart_schema}\".\"{hist[0]}\" SET v = 'corrupt'")
    w.execute(f"INSERT INTO {w.mart(SPATH_TABLE)} SELECT * FROM \"{spec.mart_schema}\".\"{hist[1]}\" LIMIT 1")

    report = w.rebuild_json("--table", SPATH_TABLE, "--full")[SPATH_TABLE]

    assert w.snapshot(SPATH_TABLE) == good
    assert report["full"] is True and report["not_in_raw"] == 0
    assert report["after"]["history_rows"] == {n: len(good[n]) for n in hist}
    assert report["after"]["mart_rows"] == len(good[spec.mart_table])
    assert report["before"]["mart_rows"] == len(good[spec.mart_table]) + 1
    # Archival split the rebuilt mart again: every history row moved back out of the mart.
    assert sum(report["archived"].values()) == sum(len(good[n]) for n in hist)


@pytest.mark.parametrize("table", MERGE_ORDER)
@pytest.mark.parametrize("dialect", ["redshift", "duckdb"])
def test_every_rebuild_file_renders_and_parses_back(table, dialect):
    r = MartSql(REGISTRY.get(table), REGISTRY, dialect, history=[f"hist_{table}_2025_h2", f"hist_{table}_2026_h1"])
    files = rebuild_files()
    assert len(files) == 8
    for f in files:
        text = r.render(f, hist=f"hist_{table}_2026_h1")
        assert "__" not in text.split("*/")[-1].replace("_kafka", "").replace("_batch", "")  # no placeholder left
        sqlglot.parse_one(text, read=dialect)


def test_marts_sql_prints_the_rebuild_files_for_redshift():
    r = subprocess.run([ORDERTRACK, "marts", "sql", "--engine", "redshift", "--table", SPATH_TABLE],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "-- uni_tracking_spath: rebuild/10_raw_latest.sql" in r.stdout
    assert 'CREATE TEMPORARY TABLE batch_latest AS SELECT r.* FROM "settlement_public"."uni_tracking_spath_raw" AS r QUALIFY' \
        in r.stdout


@pytest.mark.integration
def test_marts_sql_landing_prints_the_statements_a_landing_runs(mariadb_admin):
    """The dry run of a landing: the shared statements, rendered for the engine, columns from the
    source catalog, in the order the landing runs them."""
    r = subprocess.run([ORDERTRACK, "marts", "sql", "--landing", "--engine", "redshift", "--table", SPATH_TABLE],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    heads = [line for line in r.stdout.splitlines() if line.startswith("-- ")]
    assert [h.split()[1] for h in heads[1:]] == ["positions", "stage", "fresh_table", "fresh", "replace", "insert", "exceptions", "ledger",
                                                 "advance", "counts", "rejects", "drop_fresh", "unstage"]
    assert 'INSERT INTO "settlement_public"."uni_tracking_spath_raw" ("id", "order_id", "traceSeq", "pathTime"' in r.stdout
    assert "FORMAT AS PARQUET MANIFEST" in r.stdout and "%(batch_id)s" in r.stdout


@pytest.mark.integration
def test_marts_counts_reports_each_mart_and_its_history_read_only(make_env):
    w = Warehouse(make_env())

    def counts() -> dict:
        r = w.env.cli("marts", "counts", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    # Before any merge no mart exists: each is reported as such, and counting creates none.
    assert counts() == {s.name: None for s in w.registry}
    for spec in w.registry:
        assert w.engine.query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                              [spec.mart_schema, spec.mart_table])[0][0] == 0
    land_history(w)
    good = w.snapshot(SPATH_TABLE)
    hist = {n: len(rows) for n, rows in good.items() if n.startswith("hist_")}
    spec = w.registry.get(SPATH_TABLE)
    assert len(hist) == 2
    assert counts()[SPATH_TABLE] == {"mart_rows": len(good[spec.mart_table]), "history_rows": hist,
                                     "history_rows_total": sum(hist.values())}
