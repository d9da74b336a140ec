from __future__ import annotations

from collections import Counter

from ordertrack.source.workload import DELIVERED, RETURNED, WorkloadModel, WorkloadParams

START = 1_790_000_000


def _play(seed: int, hours: float, **params) -> tuple[WorkloadModel, list]:
    model = WorkloadModel(WorkloadParams(**params), seed=seed, start=START, first_order_id=1000)
    batches = [model.advance(START + int(h * 600)) for h in range(1, int(hours * 6) + 1)]
    return model, batches


def test_same_seed_gives_the_same_rows():
    _, a = _play(3, 2)
    _, b = _play(3, 2)
    _, c = _play(4, 2)
    flat = lambda bs: [  # noqa: E731(o["order_id"], o["add_time"]) for x in bs for o in x.orders] + [
        (e.order_id, e.trace_seq, e.path_time) for x in bs for e in x.scans
    ]
    assert flat(a) == flat(b)
    assert flat(a) != flat(c)


def test_rate_and_ids():
    model, batches = _play(1, 4, orders_per_minute=30, burst_probability=0.005)
    orders = [o for b in batches for o in b.orders]
    # 30/min over 4h is 7,200 on average; bursts make it noisy, but not by half.
    assert 0.5 * 7_200 < len(orders) < 1.5 * 7_200
    ids = [o["order_id"] for o in orders]
    assert ids == list(range(1000, 1000 + len(ids)))
    assert all(START <= o["add_time"] < START + 4 * 3600 for o in orders)


def test_many_rows_share_one_second():
    _, batches = _play(2, 6, burst_probability=0.05, burst_mean_size=300)
    per_second = Counter(o["add_time"] for b in batches for o in b.orders)
    assert max(per_second.values()) >= 100
    scans_per_second = Counter(e.path_time for b in batches for e in b.scans)
    assert max(scans_per_second.values()) >= 100  # line-haul departures share their slot


def test_lifecycles_move_forward_and_finish():
    model, batches = _play(5, 24, orders_per_minute=2, scan_interval_minutes=20)
    by_order: dict[int, list] = {}
    for b in batches:
        for e in b.scans:
            by_order.setdefault(e.order_id, []).append(e)
    assert by_order
    for events in by_order.values():
        assert [e.trace_seq for e in events] == list(range(1, len(events) + 1))
        assert all(x.path_time <= y.path_time for x, y in zip(events, events[1:]))
    finished = [ev for ev in by_order.values() if ev[-1].state in (DELIVERED, RETURNED)]
    assert len(finished) > 0.8 * len(by_order)  # with 20-minute scans almost all finish within the day


def test_tracking_rows_follow_the_latest_scan():
    _, batches = _play(6, 3, scan_interval_minutes=20)
    for b in batches:
        last = {}
        for e in b.scans:
            last[e.order_id] = e
        for oid, e in last.items():
            row = b.tracking[oid]
            assert (row["update_time"], row["scan_count"], row["last_event_code"]) == (e.path_time, e.trace_seq, e.event_code)


def test_a_live_batch_carries_the_time_it_is_written():
    from ordertrack.source.writer import ORDER_COLUMNS, SCAN_COLUMNS, TRACKING_COLUMNS, order_rows, scan_rows, tracking_rows

    model = WorkloadModel(WorkloadParams(orders_per_minute=600, scan_interval_minutes=1), seed=5, start=START,
                          first_order_id=1000)
    model.advance(START + 600)
    batch = model.advance(START + 1200)
    assert batch.orders and batch.scans and batch.tracking
    cursor = lambda rows, columns, name: [r[columns.index(name)] for r in rows]  # noqa: E731
    # History (no written_at): rows keep the time they happened.
    assert min(cursor(order_rows(batch), ORDER_COLUMNS, "add_time")) < START + 1200
    # Written late (after an outage): every cursor (add_time, update_time, pathTime) is the write
    # time, so the tracking row still agrees with its newest scan.
    batch.written_at = START + 5000
    assert set(cursor(order_rows(batch), ORDER_COLUMNS, "add_time")) == {START + 5000}
    assert set(cursor(tracking_rows(batch), TRACKING_COLUMNS, "update_time")) == {START + 5000}
    assert set(cursor(scan_rows(batch), SCAN_COLUMNS, "add_time")) == {START + 5000}
    assert set(cursor(scan_rows(batch), SCAN_COLUMNS, "pathTime")) == {START + 5000}
