"""Records gathered column by column stage exactly as the same records one by one (pure logic)."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.drain import gather, pause_finished
from consumers.staging import Gathered, RawMessage, stage
from ordertrack.errors import ServiceUnavailableError
from ordertrack.kafka.messages import position


def _gather(records: list[tuple[int, int, bytes | None, list | None]]) -> Gathered:
    g = Gathered()
    for p, o, v, h in records:
        g.add(Message(topic="t", partition=p, offset=o, value=v, headers=h), p, o)
    return g


def test_gathered_records_stage_as_raw_messages_do():
    records = [
        (0, 10, b'{"k": 1}', [("window_id", b"w1"), ("cursor", b"5")]),
        (1, 3, None, [("window_id", b"w1")]),                      # a tombstone
        (0, 11, b'{"k": 2}', [("cursor", b"6"), ("window_id", b"w2")]),  # the window id not first
        (2, 0, b'{"k": 3}', None),                                 # no headers at all
    ]
    g = _gather(records)
    expected = stage([RawMessage(p, o, v, dict(h or {}).get("window_id", b"").decode() or None) for p, o, v, h in records])
    assert g.staged().equals(expected)
    assert g.last_offsets() == {0: 11, 1: 3, 2: 0}
    assert len(g) == 4


def test_a_record_read_twice_counts_once():
    g = _gather([(0, 1, b'{"k": 1}', None), (0, 1, b'{"k": 1}', None), (0, 2, b'{"k": 2}', None)])
    assert g.staged().num_rows == 2 and len(g) == 3


# -- a consume() batch into the topics' batches (`consumers.drain.gather`) --------------------------

def _one_by_one(records: list[Message], pending: dict[str, Gathered], ends: dict[tuple[str, int], int],
                open_parts: set[tuple[str, int]]) -> None:
    """The definition: the drain's loop before batches were taken whole (234891f), word for word."""
    for m in records:
        if err := m.error():
            if err.code() == KafkaError._PARTITION_EOF:
                open_parts.discard(position(m)[:2])
                continue
            raise ServiceUnavailableError(f"Reading {m.topic()} failed: {err.str()}")
        topic, partition, offset = position(m)
        key = (topic, partition)
        stop_at = ends.get(key)
        if stop_at is None or offset >= stop_at:
            open_parts.discard(key)
            continue
        pending[topic].add(m, partition, offset)
        if offset + 1 >= stop_at:
            open_parts.discard(key)


def _outcome(fn, records, ends) -> tuple:
    pending, open_parts = {t: Gathered() for t in "abc"}, set(ends)
    try:
        fn(records, pending, ends, open_parts)
    except ServiceUnavailableError as exc:
        return ("raised", str(exc))
    return ("gathered", open_parts, {t: (g.messages(), g.last_offsets(), g.staged() if len(g) else None)
                                     for t, g in pending.items()})


_HEADERS = st.sampled_from([None, [("window_id", b"w1")], [("cursor", b"5"), ("window_id", b"w2")], [("cursor", b"6")]])


@st.composite
def _consumed(draw):
    """A consume() batch of up to three topics' partitions, each in offset order, with the end
    offsets a drain stops at (some inside the batch, some past it, one partition not assigned)."""
    parts = draw(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 2)), min_size=1, max_size=5, unique=True))
    streams = []
    ends = {}
    for topic, p in parts:
        first, n = draw(st.integers(0, 5)), draw(st.integers(0, 6))
        msgs = [Message(topic=topic, partition=p, offset=first + i, value=draw(st.sampled_from([b'{"k": 1}', None])),
                        headers=draw(_HEADERS)) for i in range(n)]
        event = draw(st.sampled_from([None, None, KafkaError._PARTITION_EOF, KafkaError._PARTITION_EOF,
                                      KafkaError._TRANSPORT]))
        if event is not None:
            msgs.insert(draw(st.integers(0, n)) if event == KafkaError._TRANSPORT else n,
                        Message(topic=topic, partition=p, offset=first + n, error=KafkaError(event)))
        streams.append(msgs)
        if draw(st.integers(0, 9)):  # now and then a partition this drain does not stop in
            ends[(topic, p)] = draw(st.integers(first, first + n + 3))
    # Interleave the partitions' streams, each kept in its order.
    order = draw(st.permutations([i for i, s in enumerate(streams) for _ in s]))
    cursors = [0] * len(streams)
    records = []
    for i in order:
        records.append(streams[i][cursors[i]])
        cursors[i] += 1
    return records, ends


@settings(max_examples=300, deadline=None)
@given(_consumed())
def test_a_consumed_batch_is_gathered_as_record_by_record(case):
    records, ends = case
    fast, slow = _outcome(gather, records, ends), _outcome(_one_by_one, records, ends)
    assert fast[:2] == slow[:2]
    if fast[0] == "gathered":
        for t, (messages, last, staged) in fast[2].items():
            assert (messages, last) == slow[2][t][:2]
            assert staged is None or staged.equals(slow[2][t][2])


def test_a_batch_below_every_end_is_taken_whole_and_closes_the_partitions_it_finishes():
    records = [Message(topic="a", partition=p, offset=o, value=b"{}", headers=[("window_id", b"w")])
               for o in range(3) for p in (0, 1)]
    pending, open_parts = {"a": Gathered()}, {("a", 0), ("a", 1)}
    gather(records, pending, {("a", 0): 3, ("a", 1): 10}, open_parts)
    assert open_parts == {("a", 1)}
    assert pending["a"].offsets == [0, 0, 1, 1, 2, 2] and pending["a"].window_ids == [b"w"] * 6


def test_a_window_id_that_is_not_utf8_lands_escaped_instead_of_stopping_the_batch():
    """A header written by another producer: the message lands, its window id readable."""
    g = _gather([(0, 1, b'{"k": 1}', [("window_id", b"w\xff")]), (0, 2, b'{"k": 2}', [("cursor", b"1"), ("window_id", b"\xfe")])])
    assert g.staged().column("window_id").to_pylist() == ["w\\xff", "\\xfe"]
    assert [m.window_id for m in g.messages()] == ["w\\xff", "\\xfe"]


# -- partitions whose end is reached stop being fetched (`consumers.drain.pause_finished`) ---------

class _Pausing:
    def __init__(self) -> None:
        self.paused: list[list[tuple[str, int]]] = []

    def pause(self, partitions: list) -> None:
        self.paused.append([(tp.topic, tp.partition) for tp in partitions])


def test_a_partition_is_paused_once_when_its_end_is_reached():
    c, paused = _Pausing(), set()
    ends = {("t", 0): 5, ("t", 1): 9, ("u", 0): 3}
    open_parts = set(ends)
    pause_finished(c, ends, open_parts, paused)  # type: ignore[arg-type]
    assert c.paused == []
    open_parts -= {("t", 0)}
    pause_finished(c, ends, open_parts, paused)  # type: ignore[arg-type]
    open_parts -= {("t", 1), ("u", 0)}
    pause_finished(c, ends, open_parts, paused)  # type: ignore[arg-type]
    pause_finished(c, ends, open_parts, paused)  # type: ignore[arg-type]
    assert c.paused == [[("t", 0)], [("t", 1), ("u", 0)]]
