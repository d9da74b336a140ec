"""The sidecar's loop: at each job's cron slot, run it; one job at a time; every run recorded.

Slots come from croniter. A job is due when its latest slot at or before now is later than the
slot it last ran for (from the run table, so a restart remembers). A sidecar that was down over
several slots therefore runs the job once at start-up, for the latest slot, never once per missed
slot. A job that raises is recorded as failed and waits for its next slot; the loop goes on. A
stop request (SIGTERM) is honoured between jobs: a running job finishes first.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import croniter

from ordertrack.log import get_logger
from ordertrack.outage import Outage, retry_until_ok
from ordertrack.warehouse.job_runs import Busy, JobRun, RunStore
from sidecar import metrics
from sidecar.clock import Clock, SystemClock

log = get_logger(__name__)

JobFn = Callable[[datetime], dict[str, Any]]
"""Runs the job for the slot it is given; returns the figures to record."""


@dataclass(frozen=True)
class Job:
    name: str
    cron: str
    run: JobFn


def previous_slot(cron: str, now: datetime) -> datetime:
    """The latest slot at or before `now`."""
    minute = now.replace(second=0, microsecond=0)
    if croniter.match(cron, minute):  # get_prev is strictly before; the current minute may be a slot
        return minute
    return croniter(cron, minute).get_prev(datetime)


def next_slot(cron: str, now: datetime) -> datetime:
    return croniter(cron, now).get_next(datetime)


class Scheduler:
    def __init__(self, jobs: list[Job], runs: RunStore, clock: Clock | None = None,
                 stop: threading.Event | None = None) -> None:
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise ValueError("job names repeat")
        self.jobs = jobs
        self.runs = runs
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self._last: dict[str, datetime] = {}

    def start(self) -> None:
        """Read, per job, the slot it last ran for. A job never seen before is registered and
        starts at its next slot (a new deployment does not run everything at once)."""
        now = self.clock.now()
        for job in self.jobs:
            last = self.runs.last_scheduled(job.name)
            if last is None:
                last = previous_slot(job.cron, now)
                self.runs.register(job.name, last, now)
            self._last[job.name] = last
            log.info("scheduler.job", job=job.name, cron=job.cron, last_slot=self._last[job.name].isoformat(),
                     due_now=previous_slot(job.cron, now) > self._last[job.name],
                     next_slot=next_slot(job.cron, now).isoformat())

    def due(self) -> list[tuple[datetime, Job]]:
        now = self.clock.now()
        out = []
        for job in self.jobs:
            slot = previous_slot(job.cron, now)
            if slot > self._last[job.name]:
                out.append((slot, job))
        return sorted(out, key=lambda x: x[0])

    def run_pending(self) -> list[JobRun]:
        """Run every due job once, oldest slot first, stopping early when asked to."""
        done = []
        for slot, job in self.due():
            if self.stop.is_set():
                break
            run = self._run(job, slot)
            if run is not None:
                done.append(run)
        return done

    def _run(self, job: Job, slot: datetime) -> JobRun | None:
        started = self.clock.now()
        self._last[job.name] = slot
        try:
            run = self.runs.begin(job.name, slot, started)
        except Busy as exc:
            reason = str(exc)
            log.warning("scheduler.job.skipped", job=job.name, slot=slot.isoformat(), reason=reason)
            metrics.JOB_RUNS.labels(job.name, "skipped").inc()
            return self._record(lambda: self.runs.record_skipped(job.name, slot, started, reason))
        except Exception as exc:  # the warehouse is unreachable: the job waits for its next slot
            log.error("scheduler.job.not_started", job=job.name, slot=slot.isoformat(),
                      error=f"{type(exc).__name__}: {exc}", hint="the run table could not be written; next slot retries")
            metrics.JOB_RUNS.labels(job.name, "not_started").inc()
            return None
        log.info("scheduler.job.started", job=job.name, slot=slot.isoformat(), run_id=run.run_id)
        try:
            figures = job.run(slot)
        except Exception as exc:  # recorded, retried at the next slot; the sidecar lives on
            error = f"{type(exc).__name__}: {exc}"
            log.error("scheduler.job.failed", job=job.name, slot=slot.isoformat(), run_id=run.run_id, error=error,
                      where=traceback.format_exc(limit=-1).strip().splitlines()[-3:])
            metrics.JOB_RUNS.labels(job.name, "failed").inc()
            return self._record(lambda: self.runs.finish(run, "failed", self.clock.now(), error=error))
        ended = self.clock.now()
        metrics.JOB_RUNS.labels(job.name, "succeeded").inc()
        metrics.JOB_SECONDS.labels(job.name).observe((ended - started).total_seconds())
        metrics.JOB_LAST_SUCCESS.labels(job.name).set(ended.timestamp())
        log.info("scheduler.job.succeeded", job=job.name, slot=slot.isoformat(), run_id=run.run_id,
                 seconds=round((ended - started).total_seconds(), 3))
        return self._record(lambda: self.runs.finish(run, "succeeded", ended, figures=figures))

    def _record(self, write: Callable[[], JobRun]) -> JobRun | None:
        """Write to the run table; a failure is logged, never raised (the sidecar lives on; a run
        left 'running' stops blocking others when its lease ends)."""
        try:
            return write()
        except Exception as exc:
            log.error("scheduler.run_record.failed", error=f"{type(exc).__name__}: {exc}")
            return None

    def next_wakeup(self) -> datetime:
        now = self.clock.now()
        return min(next_slot(j.cron, now) for j in self.jobs)

    def serve(self, max_iterations: int | None = None) -> None:
        """Run until stopped (or for `max_iterations` wake-ups, for tests)."""
        try:
            # The warehouse may be away when the sidecar starts: wait for it, as between jobs.
            retry_until_ok(self.start, Outage("warehouse (scheduler start)"), self.stop)
        except Exception:
            if self.stop.is_set():
                log.info("scheduler.stopped")
                return
            raise
        n = 0
        while not self.stop.is_set():
            self.run_pending()
            n += 1
            if self.stop.is_set() or (max_iterations is not None and n >= max_iterations):
                break
            wake = self.next_wakeup()
            log.debug("scheduler.sleep", until=wake.isoformat())
            self.clock.wait_until(wake, self.stop)
        log.info("scheduler.stopped")
