"""Job runs recorded in the warehouse (`ordertrack_job_runs`): the sidecar's memory across restarts
(which slot ran last) and its one-at-a-time guard across processes."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from ordertrack.timeparse import utc_naive as _naive
from ordertrack.warehouse.engine import JOB_RUNS_TABLE, Session, WarehouseEngine
from ordertrack.warehouse.sqlfiles import render_text

COLUMNS = ("run_id", "job", "scheduled_for", "started_at", "finished_at", "status", "figures", "error", "host")


class Busy(Exception):
    """Another run holds the warehouse."""


@dataclass
class JobRun:
    run_id: str
    job: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    figures: dict[str, Any] | None = None
    error: str | None = None
    host: str | None = None


def owner() -> str:
    """Who runs a job: `host:pid`, so a sidecar restarted on the same host can tell a run whose
    process is gone from one that is still going."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(recorded: str | None) -> bool:
    """True when `recorded` names a process of this host that no longer runs (or this very
    process, which has just started and so cannot be running that job). Other hosts: unknown,
    so not gone; their runs block until the lease ends."""
    host, _, pid = (recorded or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts.replace(tzinfo=timezone.utc)


class RunStore:
    def __init__(self, engine: WarehouseEngine, lease: timedelta = timedelta(hours=6), who: str | None = None) -> None:
        self.engine = engine
        self.who = who or owner()
        self.lease = lease  # a 'running' row older than this was left by a killed sidecar
        self.rel = {"__runs__": (engine.raw_schema, JOB_RUNS_TABLE)}

    def _sql(self, text: str) -> str:
        return render_text(text, self.engine.dialect, self.rel)

    def last_scheduled(self, job: str) -> datetime | None:
        sql = self._sql("SELECT MAX(scheduled_for) FROM __runs__ WHERE job = :job")
        (value,) = self.engine.in_transaction(lambda ex: ex(sql, {"job": job}))[0]
        return _aware(value)

    def begin(self, job: str, scheduled_for: datetime, now: datetime) -> JobRun:
        """Record the start; raise Busy when another run, not older than the lease, is running."""
        run = JobRun(uuid.uuid4().hex, job, scheduled_for, now, host=self.who)
        busy = self._sql("SELECT run_id, job, host, started_at FROM __runs__ WHERE status = 'running' AND started_at > :since")
        abandon = self._sql("UPDATE __runs__ SET status = 'abandoned', finished_at = :now, "
                            "error = 'the sidecar that ran it is gone (killed mid-job)' WHERE run_id = :run_id")
        insert = self._sql("INSERT INTO __runs__ (run_id, job, scheduled_for, started_at, status, host) "
                           "VALUES (:run_id, :job, :scheduled_for, :started_at, 'running', :host)")

        def step(execute: Session) -> None:
            execute.lock("ordertrack.job_runs")  # two sidecars starting a job take turns
            for run_id, j, h, s in execute(busy, {"since": _naive(now - self.lease)}):
                if not owner_gone(h):
                    raise Busy(f"job {j} on {h} has been running since {s}")
                # A sidecar of this host that was killed mid-job: its run will never finish, and
                # waiting out the lease would stop every job for hours.
                execute(abandon, {"now": _naive(now), "run_id": run_id})
            execute(insert, {"run_id": run.run_id, "job": job, "scheduled_for": _naive(scheduled_for),
                             "started_at": _naive(now), "host": run.host})

        self.engine.in_transaction(step)
        return run

    def finish(self, run: JobRun, status: str, now: datetime, figures: dict[str, Any] | None = None,
               error: str | None = None) -> JobRun:
        run.status, run.finished_at, run.figures, run.error = status, now, figures, error
        sql = self._sql("UPDATE __runs__ SET status = :status, finished_at = :finished_at, figures = :figures, "
                        "error = :error WHERE run_id = :run_id")
        params = {"status": status, "finished_at": _naive(now), "run_id": run.run_id, "error": error,
                  "figures": orjson.dumps(figures, default=str).decode() if figures is not None else None}
        self.engine.in_transaction(lambda ex: ex(sql, params))
        return run

    def record_skipped(self, job: str, scheduled_for: datetime, now: datetime, reason: str) -> JobRun:
        return self._record_closed(job, scheduled_for, now, "skipped", reason)

    def register(self, job: str, scheduled_for: datetime, now: datetime) -> JobRun:
        """The first start of a sidecar with this job: a row saying which slot it starts after,
        so a later restart knows which slots it missed."""
        return self._record_closed(job, scheduled_for, now, "registered", None)

    def _record_closed(self, job: str, scheduled_for: datetime, now: datetime, status: str, reason: str | None) -> JobRun:
        run = JobRun(uuid.uuid4().hex, job, scheduled_for, now, now, status, None, reason, self.who)
        sql = self._sql("INSERT INTO __runs__ (run_id, job, scheduled_for, started_at, finished_at, status, error, host) "
                        "VALUES (:run_id, :job, :scheduled_for, :started_at, :finished_at, :status, :error, :host)")
        self.engine.in_transaction(lambda ex: ex(sql, {
            "run_id": run.run_id, "job": job, "scheduled_for": _naive(scheduled_for), "started_at": _naive(now),
            "finished_at": _naive(now), "status": status, "error": reason, "host": run.host}))
        return run

    def recent(self, limit: int = 50, job: str | None = None) -> list[JobRun]:
        where = "WHERE job = :job" if job else ""
        sql = self._sql(f"SELECT {', '.join(COLUMNS)} FROM __runs__ {where} ORDER BY started_at DESC LIMIT {int(limit)}")
        rows = self.engine.in_transaction(lambda ex: ex(sql, {"job": job} if job else {}))
        out = []
        for r in rows:
            d = dict(zip(COLUMNS, r))
            for k in ("scheduled_for", "started_at", "finished_at"):
                d[k] = _aware(d[k])
            d["figures"] = orjson.loads(d["figures"]) if d["figures"] else None
            out.append(JobRun(**d))
        return out
