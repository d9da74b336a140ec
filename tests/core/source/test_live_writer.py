"""`generate --live` rides through a lost source connection: it reconnects, writes the batch in
flight again (or finds it committed), and its totals match the rows in the source."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ordertrack.source.connection import connect
from ordertrack.source.workload import WorkloadModel, WorkloadParams
from ordertrack.source.writer import SourceWriter, source_clock
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


def test_a_live_batch_written_again_after_an_outage_carries_the_later_time(make_env, mariadb_admin, settings):
    """The window buffer covers commit delays, not outages: a live batch that waited out an outage
    is stamped when it finally commits, or a poller past its first stamp never sees it."""
    env = make_env()
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO '{settings.workload.user}'@'%'")
    conn = connect(settings.mysql, user=settings.workload.user,
                   password=settings.workload.password.get_secret_value(), database=env.db)
    now = source_clock(conn)
    model = WorkloadModel(WorkloadParams(orders_per_minute=600), seed=9, start=now - 900, first_order_id=10)
    batch = model.advance(now - 300)  # prepared five minutes ago, then the source went away
    batch.written_at = now - 300
    assert batch.orders
    kill(mariadb_admin, conn.thread_id())
    SourceWriter(conn).write(batch)
    with mariadb_admin.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), MIN(add_time) FROM `{env.db}`.ecs_order_info")
        count, oldest = cur.fetchone()
    assert count == len(batch.orders)
    assert oldest >= now
