"""Records gathered column by column stage exactly as the same records one by one (pure logic)."""

from __future__ import annotations

from confluent_kafka import Message

from consumers.staging import Gathered, RawMessage, stage


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
