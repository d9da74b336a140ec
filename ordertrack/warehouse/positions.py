"""Where landing stands on each partition: the ledger's next offset, and the hole a replay opened.

The ingest ledger records every landed batch; its next offset per partition is the highest landed
offset + 1, and landing skips anything below it (a redelivery). `ordertrack replay` re-lands a
period below that by opening a *hole* [from, to) in the replays table. While a hole is open on a
partition:

* landing resumes at the hole's `next_offset` (the worker and `consume --drain` seek there);
* an offset lands when it is new (`offset >= ledger next`), or when it is in the hole, not
  re-landed yet (`next <= offset < to`) and the lander reads that partition from a declared
  position (`expected`: a reader that sought there, not a stale buffer); offsets in [to, ledger
  next) were landed before and are skipped;
* a re-landed offset *replaces* its raw row, in the same transaction (delete, then insert), so
  raw is never short of a row Kafka can no longer give back (retention), and holds each
  (topic, partition, offset) at most once;
* every landing moves the hole's `next_offset` past the batch, and closes the hole
  (`finished_at`) once the reader has passed `to`.

A lander that read on from a position the warehouse has since moved back (a worker that was
running when the replay committed) finds `resume < expected` inside its landing transaction and
gets `LedgerRewound`, with nothing committed: it must seek to the new position first. The rules
are the same for every engine: the relation below and the landing's statements that apply them
(`ordertrack.warehouse.landing`: `fresh_sql`, `replace_relanded_sql`, `advance_holes_sql`) are shared.
"""

from __future__ import annotations

from ordertrack.identifiers import quote_ansi as q
from ordertrack.warehouse.engine import LEDGER_TABLE

REPLAYS_TABLE = "ordertrack_replays"
"""One row per partition of every replay: the hole it opened and how far re-landing has got."""


class LedgerRewound(Exception):
    """A replay moved this table's landing position back below where the caller was reading:
    nothing of the batch was committed; the caller must read again from `positions`."""

    def __init__(self, topic: str, positions: dict[int, int], expected: dict[int, int]) -> None:
        moved = {p: (expected[p], positions.get(p, 0)) for p in expected if positions.get(p, 0) < expected[p]}
        super().__init__(f"the landing position of {topic} was moved back by a replay: "
                         + ", ".join(f"partition {p} from {a} to {b}" for p, (a, b) in sorted(moved.items())))
        self.topic = topic
        self.positions = positions


def replays_ddl(schema: str, *, sized: bool = False) -> str:
    """`sized`: VARCHARs with a length (Redshift's default is 256 bytes); DuckDB's have none."""
    def v(n: int) -> str:
        return f"VARCHAR({n})" if sized else "VARCHAR"

    return (f"CREATE TABLE IF NOT EXISTS {q(schema)}.{q(REPLAYS_TABLE)} ("
            f"replay_id {v(32)} NOT NULL, table_name {v(128)} NOT NULL, topic {v(255)} NOT NULL, "
            "partition INTEGER NOT NULL, from_offset BIGINT NOT NULL, to_offset BIGINT NOT NULL, "
            "next_offset BIGINT NOT NULL, requested_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, "
            f"raw_rows BIGINT, requested {v(1024)})")


def positions_relation(schema: str, topic: str) -> str:
    """Per partition of `topic` (an SQL expression: a literal or a parameter): `next_offset` (the
    ledger's), `hole_next` and `hole_to` (NULL without an open hole) and `resume`, where landing
    goes on. A hole only counts below the ledger's next offset: one left by an earlier incarnation
    of the topic (before `ledger reset`) cannot move landing past offsets never landed."""
    return (
        f"SELECT l.partition, l.next_offset, h.next_offset AS hole_next, h.to_offset AS hole_to, "
        f"CASE WHEN h.next_offset < l.next_offset THEN h.next_offset ELSE l.next_offset END AS resume "
        f"FROM (SELECT partition, MAX(last_offset) + 1 AS next_offset FROM {q(schema)}.{q(LEDGER_TABLE)} "
        f"WHERE topic = {topic} GROUP BY partition) l "
        f"LEFT JOIN (SELECT partition, MIN(next_offset) AS next_offset, MAX(to_offset) AS to_offset "
        f"FROM {q(schema)}.{q(REPLAYS_TABLE)} WHERE topic = {topic} AND finished_at IS NULL GROUP BY partition) h "
        f"ON h.partition = l.partition AND h.to_offset <= l.next_offset"
    )


def check_not_rewound(topic: str, positions: dict[int, int], expected: dict[int, int] | None) -> None:
    """Raise LedgerRewound when the warehouse would resume a partition below the offset the caller
    expected to land from next (it read on from a position that a replay has since moved back)."""
    if expected and any(positions.get(p, 0) < o for p, o in expected.items()):
        raise LedgerRewound(topic, positions, expected)
