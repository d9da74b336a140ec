"""`ordertrack scheduler` as a process: a slot missed while it was down runs at start-up, SIGTERM
stops it cleanly, and `scheduler runs` shows what ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ordertrack.warehouse.duckdb_engine import DuckDBEngine
from ordertrack.warehouse.job_runs import RunStore

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))


def test_missed_jobs_run_at_start_up_and_sigterm_stops_between_jobs(tmp_path):
    path = tmp_path / "w.duckdb"
    env = {**os.environ, "WAREHOUSE_URL": f"duckdb:///{path}"}
    store = RunStore(DuckDBEngine(path))
    long_ago = datetime.now(timezone.utc) - timedelta(days=3)
    for job in ("retention", "vacuum"):  # last ran three days ago: their latest slots were missed
        store.finish(store.begin(job, long_ago, long_ago), "succeeded", long_ago)

    proc = subprocess.Popen([ORDERTRACK, "scheduler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        done: dict[str, str] = {}
        while time.monotonic() < deadline and len(done) < 2:
            time.sleep(0.5)
            r = subprocess.run([ORDERTRACK, "scheduler", "runs", "--json"], env=env, capture_output=True, text=True)
            if r.returncode == 0:
                done = {x["job"]: x["status"] for x in json.loads(r.stdout)
                        if x["started_at"] > long_ago.isoformat() and x["status"] in ("succeeded", "failed")}
        assert done == {"retention": "succeeded", "vacuum": "succeeded"}, done
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() + out.splitlines() if line.startswith("{")]
    assert events.count("scheduler.job.succeeded") == 2 and events[-1] == "scheduler.stopped"
    runs = store.recent(20)
    # Each missed job ran once; archive, dq and merge were new, so they were registered for their next slot.
    assert sorted(r.job for r in runs if r.status == "succeeded" and r.started_at > long_ago) == ["retention", "vacuum"]
    assert sorted(r.job for r in runs if r.status == "registered") == ["archive", "dq", "merge"]
    vacuum = next(r for r in runs if r.job == "vacuum" and r.status == "succeeded" and r.started_at > long_ago)
    assert vacuum.figures == {"statements": ["CHECKPOINT"]}
