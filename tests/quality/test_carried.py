"""How far the pipeline has carried a table, and reconciling up to there (pure logic)."""

from __future__ import annotations

from collections.abc import Iterable

from ordertrack.watermarks.model import Watermark
from quality.carried import carried_until
from quality.reconcile import reconcile


def w(end: int, offsets: dict[int, int], written: float) -> Watermark:
    return Watermark("t", end, "committed", f"t:{end}", end - 10, partition_end_offsets=offsets, written_at=written)


def test_carried_up_to_the_newest_window_whose_rows_and_all_before_are_merged():
    marks = [w(110, {0: 5}, 1), w(120, {1: 3}, 2), w(130, {0: 9}, 3), w(140, {}, 4)]
    assert carried_until(marks, {0: 9, 1: 3}) == 140
    assert carried_until(marks, {0: 8, 1: 3}) == 120  # the window ending at 130 is not wholly merged
    # Partition 1 of an earlier window unmerged: a later window on partition 0 does not count.
    assert carried_until(marks, {0: 9, 1: 2}) == 110
    assert carried_until(marks, {}) is None


class Side:
    """One side held in memory: key -> cursor, filtered like the SQL side."""

    def __init__(self, name: str, rows: dict[tuple, int], since: int | None = None, until: int | None = None) -> None:
        self.name, self.all, self.since, self.until = name, rows, since, until

    def _in(self, c: int) -> bool:
        return (self.since is None or c >= self.since) and (self.until is None or c < self.until)

    def _rows(self) -> dict[tuple, int]:
        return {k: c for k, c in self.all.items() if self._in(c)}

    def bounds(self) -> tuple[int, int] | None:
        keys = [k[0] for k in self._rows()]
        return (min(keys), max(keys)) if keys else None

    def chunk_sums(self, lo: int, hi: int, step: int) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for k, c in self._rows().items():
            if lo <= k[0] < hi:
                n, h = out.get((k[0] - lo) // step, (0, 0))
                out[(k[0] - lo) // step] = (n + 1, h + hash((k, c)) % 2**32)
        return out

    def rows(self, lo: int, hi: int) -> dict[tuple, int]:
        return {k: c for k, c in self._rows().items() if lo <= k[0] < hi}

    def lookup(self, keys: Iterable[tuple]) -> dict[tuple, int]:
        return {k: self.all[k] for k in keys if k in self.all}


def test_changes_above_the_bound_are_not_findings_and_real_ones_still_are():
    until = 1000
    source = {(1,): 100, (2,): 1500, (3,): 200, (4,): 300, (6,): 1600}
    mart = {(1,): 100, (2,): 150, (3,): 150, (5,): 500, (6,): 1600}
    # 2: changed in the source after the bound, the mart holds the carried version: nothing to say.
    # 3: stale within the bound; 4: missing; 5: extra; 6: above the bound on both sides.
    result = reconcile("t", ("order_id",), Side("s", source, until=until), Side("m", mart, until=until), until=until)
    assert [k["order_id"] for k in result.stale] == [3]
    assert [k["order_id"] for k in result.missing] == [4]
    assert [k["order_id"] for k in result.extra] == [5]


def test_a_change_the_mart_took_while_the_source_was_being_read_is_not_stale():
    until = 1000
    source_then = {(1,): 100}
    mart = {(1,): 1200}  # landed after the source side was read
    src = Side("s", source_then, until=until)
    tgt = Side("m", mart, until=until)
    original_lookup = src.lookup
    src.lookup = lambda keys: {k: 1200 for k in keys} if list(keys) else original_lookup([])  # the source now
    result = reconcile("t", ("order_id",), src, tgt, until=until)
    assert result.clean
    # The mart ahead of a source that did not move is a finding.
    result = reconcile("t", ("order_id",), Side("s", source_then, until=until), tgt, until=until)
    assert [k["order_id"] for k in result.stale] == [1]


def test_a_row_changed_twice_while_reconcile_ran_is_not_stale():
    until = 1000
    src = Side("s", {(1,): 100}, until=until)
    src.lookup = lambda keys: {k: 1300 for k in keys}  # the source moved on again, past the mart's 1200
    result = reconcile("t", ("order_id",), src, Side("m", {(1,): 1200}, until=until), until=until)
    assert result.clean
