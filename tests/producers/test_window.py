from __future__ import annotations

from producers.window import SourceClock, plan_window

NOW = 1_800_000_000
KW = dict(lookback_minutes=120, buffer_minutes=5, max_hold_minutes=30)


def test_first_window_starts_at_the_lookback_and_ends_at_the_buffer():
    w = plan_window("t", None, SourceClock(NOW), **KW)
    assert (w.start, w.end, w.hold_reason, w.hold_seconds) == (NOW - 7200, NOW - 300, None, 0)
    assert w.id == f"t:{NOW - 7200}-{NOW - 300}"


def test_next_window_starts_at_the_watermark():
    w = plan_window("t", NOW - 900, SourceClock(NOW), **KW)
    assert (w.start, w.end) == (NOW - 900, NOW - 300)


def test_open_transaction_holds_the_end_at_its_start():
    w = plan_window("t", NOW - 900, SourceClock(NOW, oldest_open_trx_start=NOW - 600), **KW)
    assert (w.end, w.hold_reason, w.hold_seconds) == (NOW - 600, "open_transaction", 300)


def test_transaction_younger_than_the_buffer_holds_nothing():
    w = plan_window("t", NOW - 900, SourceClock(NOW, oldest_open_trx_start=NOW - 10), **KW)
    assert (w.end, w.hold_reason) == (NOW - 300, None)


def test_replica_lag_holds_the_end():
    w = plan_window("t", NOW - 900, SourceClock(NOW, replica_lag_seconds=120), **KW)
    assert (w.end, w.hold_reason) == (NOW - 420, "replica_lag")


def test_hold_is_capped_and_says_so():
    w = plan_window("t", NOW - 9000, SourceClock(NOW, oldest_open_trx_start=NOW - 86400), **KW)
    assert (w.end, w.hold_reason, w.hold_seconds) == (NOW - 300 - 1800, "max_hold_reached", 1800)


def test_held_below_the_watermark_is_an_empty_window_not_a_backward_one():
    w = plan_window("t", NOW - 400, SourceClock(NOW, oldest_open_trx_start=NOW - 1000), **KW)
    assert w.empty and w.end == w.start == NOW - 400


def test_overrides():
    w = plan_window("t", NOW - 900, SourceClock(NOW), start_override=NOW - 5000, end_override=NOW - 4000, **KW)
    assert (w.start, w.end) == (NOW - 5000, NOW - 4000)
    # An end override never reaches past the buffer.
    w = plan_window("t", NOW - 900, SourceClock(NOW), end_override=NOW + 999, **KW)
    assert w.end == NOW - 300
