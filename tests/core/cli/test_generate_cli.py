"""`ordertrack generate` against the real source database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))


def _counts(cur, db: str = "kuaisong") -> tuple[int, int, int]:
    out = []
    for t in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath"):
        cur.execute(f"SELECT COUNT(*) FROM `{db}`.{t}")
        out.append(cur.fetchone()[0])
    return tuple(out)


def test_history_then_live_writes_what_it_reports(make_env, mariadb_admin, settings):
    # A private copy of the source: whole-table checks below see only this run's rows.
    env = make_env()
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO '{settings.workload.user}'@'%'")
        before = _counts(cur, env.db)
    r = subprocess.run(
        [ORDERTRACK, "generate", "--history-days", "0.1", "--live", "--duration", "3s",
         "--orders-per-minute", "120", "--scan-interval-minutes", "1", "--seed", "11", "--json"],
        capture_output=True, text=True, timeout=180, env={**os.environ, "MYSQL_DATABASE": env.db},
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    with mariadb_admin.cursor() as cur:
        after = _counts(cur, env.db)
        assert after[0] - before[0] == report["orders"] > 0
        assert after[1] - before[1] == report["orders"]  # one tracking row per order
        assert after[2] - before[2] == report["scan_events"] > 0
        # Every scan event's order exists, and tracking rows point at their newest scan.
        cur.execute(
            f"SELECT COUNT(*) FROM `{env.db}`.uni_tracking_info t JOIN ("
            f"  SELECT order_id, MAX(traceSeq) seq, MAX(pathTime) pt FROM `{env.db}`.uni_tracking_spath GROUP BY order_id"
            ") s USING (order_id) WHERE t.scan_count <> s.seq OR t.update_time <> s.pt"
        )
        assert cur.fetchone()[0] == 0
        cur.execute(
            f"SELECT COUNT(*) FROM `{env.db}`.uni_tracking_spath s LEFT JOIN `{env.db}`.ecs_order_info o USING (order_id) "
            "WHERE o.order_id IS NULL"
        )
        assert cur.fetchone()[0] == 0
