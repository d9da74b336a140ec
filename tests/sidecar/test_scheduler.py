"""The sidecar's loop, driven by a fake clock, its runs recorded in a real (embedded) DuckDB."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from ordertrack.warehouse.job_runs import RunStore
from sidecar.scheduler import Job, Scheduler, next_slot, previous_slot
from tests.support.warehouses import ENGINES, open_warehouse

T0 = datetime(2026, 11, 28, 0, 30, tzinfo=timezone.utc)


class FakeClock:
    """Time moves only when the scheduler waits (instantly), or when a job takes time."""

    def __init__(self, now: datetime) -> None:
        self.t = now
        self.waits: list[datetime] = []

    def now(self) -> datetime:
        return self.t

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        self.waits.append(when)
        if not stop.is_set():
            self.t = max(self.t, when)


@pytest.fixture(params=ENGINES)
def store(request, tmp_path):
    with open_warehouse(request.param, tmp_path) as engine:
        yield RunStore(engine)


def recorder(calls: list, name: str, clock: FakeClock | None = None, takes: timedelta = timedelta(0)):
    def run(slot: datetime) -> dict:
        calls.append((name, slot))
        if clock is not None:
            clock.t += takes
        return {"slot": slot.isoformat()}

    return run


def test_slots_come_from_cron_and_the_current_minute_counts():
    at_three = datetime(2026, 11, 28, 3, 0, 40, tzinfo=timezone.utc)
    assert previous_slot("0 3 * * *", at_three) == datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)
    assert next_slot("0 3 * * *", at_three) == datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)
    assert previous_slot("0 * * * *", at_three - timedelta(seconds=41)) == datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc)


def test_each_job_runs_at_its_slot_one_at_a_time_and_every_run_is_recorded(store):
    clock, calls = FakeClock(T0), []
    jobs = [Job("retention", "0 * * * *", recorder(calls, "retention", clock, timedelta(minutes=2))),
            Job("vacuum", "0 2 * * *", recorder(calls, "vacuum", clock, timedelta(minutes=3))),
            Job("dq", "0 3 * * *", recorder(calls, "dq", clock, timedelta(minutes=1)))]
    Scheduler(jobs, store, clock).serve(max_iterations=5)
    h = lambda hh: datetime(2026, 11, 28, hh, 0, tzinfo=timezone.utc)  # noqa: E731
    # Nothing at start-up (no run ever recorded); then hourly retention, vacuum at 02:00, dq at 03:00.
    assert calls == [("retention", h(1)), ("retention", h(2)), ("vacuum", h(2)), ("retention", h(3)), ("dq", h(3)),
                     ("retention", h(4))]
    runs = [r for r in store.recent(20) if r.status != "registered"]
    assert [(r.job, r.scheduled_for, r.status) for r in reversed(runs)] == [(j, s, "succeeded") for j, s in calls]
    vacuum = next(r for r in runs if r.job == "vacuum")
    # The vacuum waited for the retention run of the same slot, and its duration is recorded.
    assert vacuum.started_at == h(2) + timedelta(minutes=2) and vacuum.finished_at == h(2) + timedelta(minutes=5)
    assert vacuum.figures == {"slot": h(2).isoformat()}


def test_a_job_missed_while_down_runs_once_at_start_up_not_once_per_missed_slot(store):
    clock, calls = FakeClock(T0), []
    jobs = [Job("retention", "0 * * * *", recorder(calls, "retention")), Job("dq", "0 3 * * *", recorder(calls, "dq"))]
    Scheduler(jobs, store, clock).serve(max_iterations=2)  # runs retention at 01:00
    assert calls == [("retention", datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc))]
    # Down from 01:00 until 07:20 the next day: 29 retention slots and one dq slot were missed.
    calls.clear()
    clock.t = datetime(2026, 11, 29, 7, 20, tzinfo=timezone.utc)
    s = Scheduler(jobs, store, clock)
    s.start()
    s.run_pending()
    assert calls == [("dq", datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)),
                     ("retention", datetime(2026, 11, 29, 7, 0, tzinfo=timezone.utc))]
    s.run_pending()
    assert len(calls) == 2  # nothing is due twice


def test_a_failing_job_is_recorded_and_retried_at_its_next_slot_and_the_others_go_on(store):
    clock, calls, attempts = FakeClock(T0), [], []
    failed_before = REGISTRY.get_sample_value("ordertrack_job_runs_total", {"job": "flaky", "status": "failed"}) or 0

    def flaky(slot: datetime) -> dict:
        attempts.append(slot)
        if len(attempts) == 1:
            raise RuntimeError("warehouse said no")
        return {"ok": True}

    jobs = [Job("flaky", "0 * * * *", flaky), Job("dq", "0 * * * *", recorder(calls, "dq"))]
    Scheduler(jobs, store, clock).serve(max_iterations=3)
    assert attempts == [datetime(2026, 11, 28, h, 0, tzinfo=timezone.utc) for h in (1, 2)]
    assert len(calls) == 2  # dq ran at both slots, after the failure too
    by_slot = {(r.job, r.scheduled_for.hour): r for r in store.recent(10)}
    assert by_slot[("flaky", 1)].status == "failed"
    assert by_slot[("flaky", 1)].error == "RuntimeError: warehouse said no"
    assert by_slot[("flaky", 2)].status == "succeeded"
    # What alerting sees without reading the run table.
    assert REGISTRY.get_sample_value("ordertrack_job_runs_total", {"job": "flaky", "status": "failed"}) == failed_before + 1
    assert REGISTRY.get_sample_value("ordertrack_job_last_success_timestamp_seconds", {"job": "flaky"}) == \
        by_slot[("flaky", 2)].finished_at.timestamp()


def test_a_stop_request_lets_the_running_job_finish_and_starts_no_other(store):
    clock, calls = FakeClock(T0 + timedelta(hours=1)), []
    stop = threading.Event()

    def first(slot: datetime) -> dict:
        calls.append("first")
        stop.set()  # SIGTERM arrives while this job runs
        return {}

    jobs = [Job("a", "0 * * * *", first), Job("b", "0 * * * *", recorder(calls, "b"))]
    for j in jobs:  # both ran at 00:00, so both are due at 01:00
        store.finish(store.begin(j.name, T0.replace(minute=0), T0), "succeeded", T0)
    s = Scheduler(jobs, store, clock, stop=stop)
    s.serve()
    assert calls == ["first"]
    assert [r.status for r in store.recent(10) if r.job == "a"][0] == "succeeded"


def test_a_second_sidecar_on_the_same_warehouse_skips_while_a_run_is_in_progress(store):
    now = T0
    # another sidecar's dq run, still going (a live process of this host: the test's parent)
    other = RunStore(store.engine, who=f"{socket.gethostname()}:{os.getppid()}")
    held = other.begin("dq", now, now)
    clock, calls = FakeClock(now + timedelta(minutes=40)), []
    Scheduler([Job("retention", "0 * * * *", recorder(calls, "retention"))], store, clock).serve(max_iterations=2)
    assert calls == []
    skipped = [r for r in store.recent(10) if r.job == "retention"]
    assert skipped[0].status == "skipped" and "job dq" in skipped[0].error
    store.finish(held, "succeeded", now + timedelta(hours=1, minutes=30))
    Scheduler([Job("retention", "0 * * * *", recorder(calls, "retention"))], store, clock).serve(max_iterations=2)
    assert calls == [("retention", datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc))]


def test_a_run_left_by_a_killed_sidecar_of_this_host_does_not_block_the_next_one(store):
    dead = RunStore(store.engine, who=f"{socket.gethostname()}:{gone_pid()}")
    dead.begin("dq", T0, T0)  # SIGKILLed mid-job: the row says 'running' forever
    clock, calls = FakeClock(T0 + timedelta(minutes=40)), []
    Scheduler([Job("retention", "0 * * * *", recorder(calls, "retention"))], store, clock).serve(max_iterations=2)
    assert calls == [("retention", datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc))]
    runs = store.recent(10)
    assert [r.status for r in runs if r.job == "dq"] == ["abandoned"]
    assert [r.status for r in runs if r.job == "retention"][0] == "succeeded"


def gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_an_unreachable_run_table_skips_the_slot_but_never_kills_the_sidecar(store):
    class Flaky(RunStore):
        """The real store, but the warehouse refuses the first write of a run."""

        def __init__(self, inner: RunStore) -> None:
            self.__dict__.update(inner.__dict__)
            self.refusals = 1

        def begin(self, job, scheduled_for, now):
            if self.refusals:
                self.refusals -= 1
                raise ConnectionError("warehouse unreachable")
            return super().begin(job, scheduled_for, now)

    clock, calls = FakeClock(T0), []
    Scheduler([Job("retention", "0 * * * *", recorder(calls, "retention"))], Flaky(store), clock).serve(max_iterations=3)
    # 01:00 could not start (nothing recorded, nothing run); 02:00 ran.
    assert calls == [("retention", datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc))]
    assert [r.scheduled_for.hour for r in store.recent(10) if r.status == "succeeded"] == [2]
