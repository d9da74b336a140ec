"""The faults, each injected under load; `FAULTS` lists them in the order a full run injects them."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

from bench.chaos.processes import LogTail, event_time
from bench.chaos.run import Injection, Run
from bench.chaos.services import cli_json, last_line, run_cli, wait_gone
from bench.chaos.settings import BUFFER_MINUTES, HarnessError

# The warehouse holder, run as `python -c HOLD_WAREHOUSE <file> <seconds>`: opens the DuckDB file
# read-write (DuckDB lets one process write a file) and keeps it; prints "held", then "released".
HOLD_WAREHOUSE = """
import sys, time
import duckdb
path, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + 120
while True:
    try:
        con = duckdb.connect(path)
        break
    except duckdb.IOException as exc:
        # The worker holds it a moment per batch: take it between two of its transactions.
        if "lock" not in str(exc).lower() or time.monotonic() > deadline:
            sys.exit(f"could not open {path}: {exc}")
        time.sleep(0.02)
print("held", flush=True)
time.sleep(seconds)
con.close()
print("released", flush=True)
"""


def producer_kill(run: Run) -> Injection:
    """SIGKILL `produce --every` mid-window: right after the first table of a cycle committed,
    while the other tables' windows are still open; the harness restarts it (the fault killed it)."""
    tail = LogTail(run.procs["producer"].log)
    first = run.wait_event(tail, lambda e: e["event"] == "producer.window.committed",
                           timeout=3 * run.profile.produce_every + 30)
    run.procs.kill("producer")
    at = time.time()
    cycle = [e for e in ([first] if first else []) + tail.events() if e["event"] == "producer.window.committed"]
    committed = sorted({e["table"] for e in cycle if first and abs((event_time(e) or 0) - (event_time(first) or 0)) < 2})
    in_flight = [t["name"] for t in run.tables if t["name"] not in committed]
    run.procs.start("producer")
    return Injection(at, time.time(), {"committed_in_that_cycle": committed, "in_flight": in_flight,
                                       "mid_window": bool(first) and bool(in_flight)})


def worker_kill(run: Run) -> Injection:
    """SIGKILL the worker mid-landing: right after its first batch landed following a producer
    commit (the cycle's other tables are landing then); the harness restarts it."""
    produced = LogTail(run.procs["producer"].log)
    run.wait_event(produced, lambda e: e["event"] == "producer.window.committed" and e.get("rows", 0) > 0,
                   timeout=3 * run.profile.produce_every + 30)
    landed = LogTail(run.procs["worker"].log)
    first = run.wait_event(landed, lambda e: e["event"] == "landing.batch", timeout=run.profile.max_batch_age + 30)
    run.procs.kill("worker")
    at = time.time()
    done = sorted({e["table"] for e in ([first] if first else []) + landed.events() if e["event"] == "landing.batch"})
    run.procs.start("worker")
    return Injection(at, time.time(), {"landed_just_before": done,
                                       "other_tables_pending": [t["name"] for t in run.tables if t["name"] not in done],
                                       "aimed_at_a_landing": first is not None})


def kafka_kill(run: Run) -> Injection:
    """SIGKILL the broker, leave it down, then `stack up` (which restarts only what is stopped)."""
    pid = run.stack.signal("kafka", signal.SIGKILL)
    at = time.time()
    wait_gone(pid, 30)
    run.hold(run.profile.kafka_down)
    restart_seconds = run.stack.up()
    return Injection(at, time.time(), {"down_seconds": run.profile.kafka_down, "stack_up_seconds": restart_seconds})


def mariadb_stop(run: Run) -> Injection:
    """Stop MariaDB (SIGTERM, a clean shutdown), keep it stopped, then `stack up`."""
    pid = run.stack.signal("mariadb", signal.SIGTERM)
    at = time.time()
    if not wait_gone(pid, 120):
        raise HarnessError("MariaDB of the private stack did not stop within 120 s of SIGTERM")
    run.hold(max(0.0, run.profile.mariadb_down - (time.time() - at)))
    restart_seconds = run.stack.up()
    return Injection(at, time.time(), {"down_seconds": round(time.time() - at - restart_seconds, 1),
                                       "stack_up_seconds": restart_seconds})


def warehouse_hold(run: Run) -> Injection:
    """Another process opens the DuckDB file read-write and keeps it (DuckDB lets one process
    write a file), longer than the engine's retry budget."""
    holder = run.procs.start("warehouse_holder")
    out = holder.out
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "held" not in out.read_text() and holder.running():
        run.procs.check()
        time.sleep(0.05)
    if "held" not in out.read_text():
        run.procs.stop("warehouse_holder", grace=5)
        raise HarnessError(f"the warehouse holder never got the file: {holder.tail_lines(1)}")
    at = time.time()
    holder.expected_exit = True  # it ends by itself when the hold is over
    code = holder.wait(run.profile.warehouse_hold + 60)
    return Injection(at, time.time(), {"held_seconds": round(time.time() - at, 1), "holder_code": code})


def second_worker(run: Run) -> Injection:
    """A second worker joins the group, stays a while, and leaves (SIGTERM)."""
    run.procs.start("worker2")
    at = time.time()
    run.hold(run.profile.second_worker_for)
    stopped = run.procs.stop("worker2")
    return Injection(at, time.time(), {"second_worker_seconds": round(time.time() - at, 1), "left": stopped})


def scheduler_kill(run: Run) -> Injection:
    """SIGKILL the sidecar while a job runs (dq, the longest, preferred); restart it; recovered
    once the new sidecar finished a job (not merely skipped one)."""
    tail = LogTail(run.procs["scheduler"].log)
    started = run.wait_event(tail, lambda e: e["event"] == "scheduler.job.started" and e.get("job") == "dq", timeout=150)
    run.procs.kill("scheduler")
    at = time.time()
    finished = [e for e in tail.events() if e.get("run_id") == (started or {}).get("run_id")
                and e["event"] in ("scheduler.job.succeeded", "scheduler.job.failed")]
    run.procs.start("scheduler")
    after = LogTail(run.procs["scheduler"].log, from_start=True)
    detail: dict[str, Any] = {"killed_job": (started or {}).get("job"), "mid_job": bool(started) and not finished,
                              "after_restart": []}

    def job_ran() -> bool:
        for e in after.events():
            if e["event"] in ("scheduler.job.succeeded", "scheduler.job.failed", "scheduler.job.skipped"):
                detail["after_restart"].append({k: e.get(k) for k in ("event", "job", "reason", "error")})
        ok = any(x["event"] == "scheduler.job.succeeded" for x in detail["after_restart"])
        if not ok:
            run.why_not = "the restarted scheduler has not finished a job" + (
                f" (last: {detail['after_restart'][-1]})" if detail["after_restart"] else "")
        return ok

    return Injection(at, time.time(), detail, also_recovered=job_ran)


def backfill_beside(run: Run) -> Injection:
    """`ordertrack backfill` of the last ten minutes of every table, in one-minute chunks, while the
    load writes, the live producer publishes and the worker lands: the same topics, its own
    transactional id, re-published versions that must change no mart and lose nothing."""
    end = int(time.time()) - BUFFER_MINUTES * 60 - 30  # published by the live producer already
    tables = [a for t in run.tables for a in ("--table", t["name"])]
    at = time.time()
    r = run_cli(run.layout, "backfill", *tables, "--from", str(end - 600), "--to", str(end), "--chunk", "1m",
                "--json", timeout=900)
    if r.returncode != 0:
        raise HarnessError(f"`ordertrack backfill` failed (exit {r.returncode}): {last_line(r.stderr)}")
    results = json.loads(r.stdout)["results"]
    return Injection(at, time.time(), {"rows": {x["table"]: x["rows"] for x in results},
                                       "chunks": sum(x["chunks"] for x in results)})


def replay_under_worker(run: Run) -> Injection:
    """`ordertrack replay` of the last five minutes of scan events while the worker runs: their raw
    rows are removed and the worker, told inside its next landing, restarts and lands them again."""
    tail = LogTail(run.procs["worker"].log)
    at = time.time()
    r = run_cli(run.layout, "replay", "--table", "uni_tracking_spath", "--from", str(int(at) - 300), "--json",
                timeout=300)
    if r.returncode != 0:
        raise HarnessError(f"`ordertrack replay` failed (exit {r.returncode}): {last_line(r.stderr)}")
    plan = json.loads(r.stdout)
    restarted = run.wait_event(tail, lambda e: e["event"] == "worker.restarting", timeout=120)
    detail = {"raw_rows_replaced": plan["raw_rows"], "messages": plan["messages"],
              "worker_restarted": restarted is not None}

    def re_landed() -> bool:
        if restarted is None and plan["messages"]:
            run.why_not = "the worker did not restart after the replay moved its position back"
            return False
        rows = cli_json(run.layout, "status", "--json", "--table", "uni_tracking_spath", ok=(0, 1), timeout=120)
        running = [] if rows is None else [w for t in rows["tables"] for w in t["running"] if w["kind"] == "replay"]
        if rows is None or running:
            run.why_not = "the replay is still re-landing" if running else "`status` failed"
            return False
        return True

    return Injection(at, time.time(), detail, also_recovered=re_landed)


FAULTS: dict[str, tuple[str, Callable[[Run], Injection]]] = {
    "producer_kill": ("producer SIGKILL mid-window", producer_kill),
    "worker_kill": ("worker SIGKILL mid-landing", worker_kill),
    "kafka_kill": ("Kafka broker SIGKILL + restart", kafka_kill),
    "mariadb_stop": ("MariaDB stopped + started", mariadb_stop),
    "warehouse_hold": ("warehouse held past retry budget", warehouse_hold),
    "second_worker": ("second worker joins, leaves", second_worker),
    "scheduler_kill": ("scheduler SIGKILL mid-job", scheduler_kill),
    "backfill": ("backfill beside the live producer", backfill_beside),
    "replay": ("replay under the running worker", replay_under_worker),
}


