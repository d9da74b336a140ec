"""One run from an empty state folder to the judgement: set-up, load, faults, drain, stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from bench.chaos.faults import FAULTS, HOLD_WAREHOUSE
from bench.chaos.judge import findings, judge
from bench.chaos.processes import Exit, Supervisor, event_time, events_of
from bench.chaos.report import code_label
from bench.chaos.run import FaultRecord, Injection, Run
from bench.chaos.services import PrivateStack, cli_json, is_ours, last_line, ordertrack_argv, run_cli, wait_gone
from bench.chaos.settings import BUFFER_MINUTES, FAULT, LOAD, PIPELINE, STATE_MARKER, HarnessError, Layout, Profile, emit


def prepare_state(layout: Layout) -> None:
    """Start from an empty state folder; a leftover run of ours is stopped first, anything else refused."""
    if layout.state.exists() and any(layout.state.iterdir()):
        if not (layout.state / STATE_MARKER).exists():
            raise HarnessError(f"{layout.state} exists and is not a chaos state folder; give another --state-dir")
        cleanup(layout.state)
        shutil.rmtree(layout.state)
    layout.logs.mkdir(parents=True, exist_ok=True)
    (layout.state / STATE_MARKER).write_text("a private stack of bench/chaos (python -m bench.chaos); emptied by its next run\n")
    (layout.harness / "run.json").write_text(json.dumps(layout.to_json()))


def write_config(layout: Layout) -> None:
    """The shipped config with a small window buffer and every sidecar job due each minute."""
    raw = yaml.safe_load((layout.code / "ordertrack" / "resources" / "pipeline.yaml").read_text())
    raw["window_settings"]["buffer_minutes"] = BUFFER_MINUTES
    raw["schedule"] = {"retention": "* * * * *", "archive": "* * * * *", "vacuum": "*/10 * * * *", "dq": "* * * * *"}
    layout.config.write_text(yaml.safe_dump(raw, sort_keys=False))


def load_args(profile: Profile) -> list[str]:
    return ["--orders-per-minute", str(profile.orders_per_minute),
            "--scan-interval-minutes", str(profile.scan_interval_minutes)]


def child_specs(layout: Layout, profile: Profile) -> dict[str, tuple[str, list[str]]]:
    def ot(*args: str) -> list[str]:
        return ordertrack_argv(layout, *args)

    worker = ot("consume", "--max-batch-age", f"{profile.max_batch_age:.0f}s")
    return {
        "generate": (LOAD, ot("generate", "--live", *load_args(profile), "--json")),
        "producer": (PIPELINE, ot("produce", "--every", f"{profile.produce_every:.0f}s")),
        "worker": (PIPELINE, worker),
        "worker2": (PIPELINE, worker),
        "scheduler": (PIPELINE, ot("scheduler")),
        "warehouse_holder": (FAULT, [sys.executable, "-c", HOLD_WAREHOUSE, str(layout.warehouse),
                                     str(profile.warehouse_hold)]),
    }


def write_history(layout: Layout, profile: Profile) -> dict[str, Any]:
    """A few minutes of history first (one-shot), so rows flow from the pipeline's first cycle
    instead of one window buffer after the live load begins."""
    r = run_cli(layout, "generate", *load_args(profile), "--history-days", str(profile.history_days), "--json",
                timeout=900)
    if r.returncode != 0:
        raise HarnessError(f"`ordertrack generate --history-days` failed: {last_line(r.stderr)}")
    totals = json.loads(r.stdout)
    emit("history.written", **{k: totals.get(k) for k in ("orders", "scan_events", "tracking_writes", "seconds")})
    return totals


def start_pipeline(run: Run) -> float:
    for name in ("generate", "producer", "worker", "scheduler"):
        run.procs.start(name)
    return time.time()


def warm_up(run: Run, load_started: float) -> bool:
    """Rows flow: every table committed a window since the load began, published rows, and
    landing caught up."""
    ok = run.wait_until(lambda: run.committed_since(load_started, {}) and run.lag_ok(require_data=True),
                        run.profile.recovery_timeout)
    emit("warm_up", ok=ok, seconds=round(time.time() - load_started, 1), waiting_for=None if ok else run.why_not)
    return ok


def inject_all(run: Run, names: list[str], load_started: float) -> list[FaultRecord]:
    records = []
    spacing = run.profile.duration / (len(names) + 1)
    for i, name in enumerate(names):
        label, inject = FAULTS[name]
        run.hold(max(0.0, load_started + (i + 1) * spacing - time.time()), restart=True)
        before = run.positions()
        emit("fault.injecting", fault=name)
        inj = inject(run)
        emit("fault.injected", fault=name, outage_seconds=round(inj.ended_at - inj.injected_at, 1), **inj.detail)
        run.procs.restart_down()  # what the outage made exit comes back now that it is over
        recovered = run.wait_until(lambda: _recovered(run, inj, before), run.profile.recovery_timeout)
        at = time.time() if recovered else None
        rec = FaultRecord(name, label, inj.injected_at, inj.ended_at, at,
                          round(at - inj.ended_at, 1) if at else None, None if recovered else run.why_not, inj.detail)
        emit("fault.recovered" if recovered else "fault.not_recovered", fault=name,
             recovery_seconds=rec.recovery_seconds, waiting_for=rec.not_recovered_because)
        records.append(rec)
    return records


def _recovered(run: Run, inj: Injection, before: dict[str, int]) -> bool:
    if inj.also_recovered is not None and not inj.also_recovered():
        return False
    return run.committed_since(inj.ended_at, before) and run.lag_ok()


def source_rows(run: Run) -> dict[str, int]:
    got: list[list[dict[str, Any]]] = []

    def counted() -> bool:
        rows = cli_json(run.layout, "source", "counts", "--json")
        if rows is not None:
            got.append(rows)
        return rows is not None

    if not run.wait_until(counted, 120):
        raise HarnessError("`ordertrack source counts` failed: cannot count what the load wrote")
    return {r["table"]: r["rows"] for r in got[-1]}


def stop_load(run: Run, load_started: float, before: dict[str, int]) -> dict[str, Any]:
    """Stop the generator and count what it wrote: new orders and scan events from the source
    itself; tracking-row updates from the generators' own totals (an instance that died without
    printing them makes that figure a lower bound)."""
    run.hold(max(0.0, load_started + run.profile.duration - time.time()), restart=True)
    run.procs.stop("generate")
    seconds = time.time() - load_started
    after = source_rows(run)
    totals = [json.loads(p.read_text()) for p in sorted(run.layout.logs.glob("generate.*.out")) if _is_json(p)]
    instances = run.procs["generate"].instance
    written = {"orders": after["ecs_order_info"] - before["ecs_order_info"],
               "scan_events": after["uni_tracking_spath"] - before["uni_tracking_spath"],
               "tracking_writes": sum(t.get("tracking_writes", 0) for t in totals)}
    rows = sum(written.values())
    load = {"seconds": round(seconds, 1), **written, "rows": rows, "rows_per_second": round(rows / seconds, 1),
            "generator_instances": instances, "instances_that_reported_totals": len(totals),
            "tracking_writes_complete": len(totals) == instances}
    emit("load.stopped", **load)
    return load


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, json.JSONDecodeError):
        return False


def drain(run: Run) -> dict[str, Any]:
    """Wait until the producer published past the last source write and the worker landed it."""
    began = time.time()
    last: dict[str, int] = {}

    def published_past_last_write() -> bool:
        nonlocal last
        last = last or run.source_max_cursors() or {}
        marks = run.positions()
        if not last or any(marks.get(t, -1) <= c for t, c in last.items()):
            run.why_not = f"watermarks {marks} not past the last source writes {last}"
            return False
        return run.lag_ok()

    ok = run.wait_until(published_past_last_write, run.profile.drain_timeout)
    out = {"drained": ok, "seconds": round(time.time() - began, 1), "waiting_for": None if ok else run.why_not,
           "last_source_cursor": last}
    emit("drain", **out)
    return out


def stop_pipeline(run: Run) -> dict[str, dict[str, Any]]:
    run.procs.check()
    return {name: run.procs.stop(name) for name in ("producer", "worker", "scheduler")}


def landing_gaps(run: Run, records: list[FaultRecord]) -> None:
    """Per fault, the longest time without a landed batch (any worker) from injection to recovery."""
    paths = sorted(run.layout.logs.glob("worker*.log"))
    times = sorted(filter(None, (event_time(e) for e in events_of(paths, "landing.batch") if e.get("landed", 1))))
    for r in records:
        end = r.recovered_at or r.ended_at + run.profile.recovery_timeout
        inside = [r.injected_at] + [t for t in times if r.injected_at <= t <= end] + [end]
        r.longest_landing_gap_seconds = round(max(b - a for a, b in zip(inside, inside[1:])), 1)


def place_exits(exits: list[Exit], records: list[FaultRecord], drain_started: float) -> list[Exit]:
    """Give each unexpected exit to the fault in progress (injection to the next injection)."""
    unplaced = []
    for ex in exits:
        owner = None
        for r in records:
            if r.injected_at - 1 <= ex.at:
                owner = r
        if ex.at >= drain_started:
            ex.phase = "drain"
            unplaced.append(ex)
        elif owner is None:
            ex.phase = "warm-up"
            unplaced.append(ex)
        else:
            ex.phase = owner.name
            owner.exits.append(ex)
    return unplaced


def run_harness(layout: Layout, profile: Profile, faults: list[str], keep_stack: bool) -> dict[str, Any]:
    began = time.time()
    prepare_state(layout)
    write_config(layout)
    stack = PrivateStack(layout)
    procs = Supervisor(layout, child_specs(layout, profile))
    try:
        emit("stack.up", state=str(layout.state), seconds=stack.up())
        topics = run_cli(layout, "topics", "create")
        if topics.returncode != 0:
            raise HarnessError(f"`ordertrack topics create` failed: {last_line(topics.stderr)}")
        tables = cli_json(layout, "config", "show", "--json")
        if not tables:
            raise HarnessError("`ordertrack config show --json` failed")
        run = Run(layout, profile, stack, procs, tables)
        history = write_history(layout, profile)
        before = source_rows(run)
        load_started = start_pipeline(run)
        if not warm_up(run, load_started):
            raise HarnessError(f"rows never started to flow: {run.why_not} (see {layout.logs})")
        records = inject_all(run, faults, load_started)
        load = stop_load(run, load_started, before)
        drain_started = time.time()
        drained = drain(run)
        stops = stop_pipeline(run)
        procs.check()
        unplaced = place_exits(procs.exits, records, drain_started)
        landing_gaps(run, records)
        judged = judge(run, records)
    finally:
        procs.stop_all()
        if not keep_stack:
            stack.down()
    result = {
        "code": code_label(layout.code), "state": str(layout.state), "profile": asdict(profile),
        "started_at": began, "load_started_at": load_started, "seconds": round(time.time() - began, 1),
        "history": history, "load": load, "drain": drained, "stops": stops,
        "faults": [asdict(r) for r in records], "exits": [asdict(e) for e in procs.exits],
        "unplaced_exits": [asdict(e) for e in unplaced], "judge": judged,
    }
    result["findings"], result["notes"] = findings(result)
    result["clean"] = not result["findings"]
    return result


def cleanup(state: Path) -> None:
    """Stop whatever a run under `state` left (children by recorded pid, then its stack)."""
    run_file = state / "harness" / "run.json"
    if not run_file.exists():
        return
    info = json.loads(run_file.read_text())
    layout = Layout(Path(info["state"]), Path(info["code"]), info["port_offset"], Path(info["cache"]))
    try:
        pids = json.loads(layout.pids.read_text())
    except (OSError, json.JSONDecodeError):
        pids = {}
    for name, pid in pids.items():
        if pid and is_ours(pid, layout):
            os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, 30) and is_ours(pid, layout):
                os.kill(pid, signal.SIGKILL)
            emit("cleanup.stopped", process=name, pid=pid)
    PrivateStack(layout).down()


