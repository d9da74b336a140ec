"""ordertrack.progress off a terminal: structured events, the figures in them, and the switch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from ordertrack import progress as progress_module
from ordertrack.progress import track


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """A monotonic clock the test moves by hand: `clock[0] = t`."""
    now = [100.0]
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.delenv("ORDERTRACK_PROGRESS", raising=False)
    return now


def test_off_a_terminal_it_logs_every_interval_and_once_at_the_end(clock):
    with capture_logs() as logs:
        with track("landing", total=90, unit="messages", every=10, bar=False) as p:
            clock[0] = 105
            p.advance(10)  # under the interval: nothing yet
            clock[0] = 110
            p.advance(20, table="orders")
            clock[0] = 115
            p.advance(30)
    assert [e["event"] for e in logs] == ["progress", "progress.done"]
    during, done = logs
    assert (during["done"], during["total"], during["table"]) == (30, 90, "orders")
    assert (done["what"], done["done"], done["total"], done["unit"]) == ("landing", 60, 90, "messages")
    assert done["table"] == "orders"  # fields stay until changed


def test_rate_and_time_left_follow_what_is_done(clock):
    with capture_logs() as logs:
        with track("rebuild", total=90, every=0, bar=False) as p:
            assert p.rate == 0.0 and p.eta_seconds is None  # nothing done, no time passed
            clock[0] = 110
            p.update(done=30)
            assert p.rate == 3.0  # 30 in 10 s
            assert p.eta_seconds == 20.0  # 60 left at 3 a second
            snap = p.snapshot()
            assert (snap["rate_per_second"], snap["elapsed_seconds"], snap["eta_seconds"]) == (3.0, 10.0, 20.0)
            p.update(total=30)
            assert p.eta_seconds is None  # done
        with track("generate", every=0, bar=False) as unknown:
            clock[0] = 120
            unknown.advance(50)
            assert unknown.rate == 5.0 and unknown.eta_seconds is None  # no total, no time left
    assert [(e["event"], e["total"]) for e in logs] == [("progress.done", 30), ("progress.done", None)]


def test_the_end_is_logged_even_when_the_work_fails(clock):
    with capture_logs() as logs, pytest.raises(RuntimeError):
        with track("archive", total=3, unit="marts", bar=False) as p:
            p.advance(1)
            raise RuntimeError("boom")
    assert [(e["event"], e["done"], e["total"]) for e in logs] == [("progress.done", 1, 3)]


@pytest.mark.parametrize("value", ["off", "0", "false", "NO"])
def test_ordertrack_progress_off_logs_nothing_and_draws_nothing(clock, monkeypatch, value):
    monkeypatch.setenv("ORDERTRACK_PROGRESS", value)
    with capture_logs() as logs:
        with track("consume --drain", total=10, every=1, bar=True) as p:
            for _ in range(10):
                clock[0] += 5
                p.advance(1)
            assert p._bar is None  # the bar is off too, even when asked for
    assert logs == []
    assert p.done == 10  # the figures still count, for callers that read them


class DictSide:
    """A reconcile side over a dict {order_id: cursor}, hashing as the SQL sides sum."""

    name = "dict"

    def __init__(self, rows: dict[int, int]) -> None:
        self.data = rows

    def bounds(self):
        return (min(self.data), max(self.data)) if self.data else None

    def chunk_sums(self, lo: int, hi: int, step: int) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for k, c in self.data.items():
            if lo <= k < hi:
                n, h = out.get((k - lo) // step, (0, 0))
                out[(k - lo) // step] = (n + 1, h + hash((k, c)))
        return out

    def rows(self, lo: int, hi: int) -> dict[tuple, int]:
        return {(k,): c for k, c in self.data.items() if lo <= k < hi}

    def lookup(self, keys):
        return {k: self.data[k[0]] for k in keys if k[0] in self.data}


def test_reconcile_progress_covers_its_key_range_exactly_once(clock):
    from quality.reconcile import reconcile

    source = {k: 1 for k in range(1, 100_001)}
    mart = {**source, 5: 0, 77_777: 0}  # two stale keys, deep in ranges cut again and again
    del mart[50_000]
    with capture_logs() as logs:
        with track("dq reconcile", bar=False) as p:
            result = reconcile("t", ("order_id",), DictSide(source), DictSide(mart), fanout=8, leaf_rows=50, progress=p)
    assert [k["order_id"] for k in result.stale] == [5, 77_777] and len(result.missing) == 1
    done = logs[-1]
    assert done["event"] == "progress.done" and done["done"] == done["total"] == 100_000
    assert done["ranges"] == result.ranges_compared and done["rows_fetched"] == result.rows_fetched
