"""`generate --live` rides through a lost source connection: it reconnects, writes the batch in
flight again (or finds it committed), and its totals match the rows in the source."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.pipeline_env import ORDERTRACK
from tests.support.waits import kill, wait_until

pytestmark = pytest.mark.integration






def test_generate_live_reconnects_and_counts_every_row_once(make_env, mariadb_admin):
    env = make_env()
    with mariadb_admin.cursor() as cur:  # the workload writer may write this test's copy of the source
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO 'kuaisong_app'@'%'")
    proc = subprocess.Popen(
        [ORDERTRACK, "--config", str(env.config_path), "generate", "--live", "--duration", "25s",
         "--orders-per-minute", "3000", "--scan-interval-minutes", "0.2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env.env_vars, "MYSQL_DATABASE": env.db},
    )

    def writer_session() -> int | None:
        with mariadb_admin.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'kuaisong_app' AND DB = %s",
                        (env.db,))
            row = cur.fetchone()
        return None if row is None else int(row[0])

    def orders() -> int:
        with mariadb_admin.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{env.db}`.ecs_order_info")
            return int(cur.fetchone()[0])

    killed = []
    for _ in range(3):  # three outages, each once rows are flowing again
        floor = orders()
        wait_until("new orders", lambda: orders() > floor)
        victim = wait_until("the writer's session", writer_session)
        kill(mariadb_admin, victim)
        killed.append(victim)
        wait_until("a new session", lambda: (writer_session() or victim) != victim)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    totals = json.loads(out)
    with mariadb_admin.cursor() as cur:
        cur.execute(f"SELECT (SELECT COUNT(*) FROM `{env.db}`.ecs_order_info), (SELECT COUNT(*) FROM `{env.db}`.uni_tracking_spath)")
        in_source = cur.fetchone()
    assert (totals["orders"], totals["scan_events"]) == tuple(int(n) for n in in_source)
    assert totals["orders"] > 0 and totals["scan_events"] > 0
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert 1 <= events.count("generate.source.outage_started") <= 3
    assert events.count("generate.source.outage_ended") == events.count("generate.source.outage_started")
    assert "internal error" not in err
