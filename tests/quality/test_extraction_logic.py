"""Which windows the extraction check compares, and which hop it blames (pure logic)."""

from __future__ import annotations

from ordertrack.config import DataQualityConfig
from ordertrack.freshness import judge
from ordertrack.watermarks.model import Watermark
from quality.extraction import DeadLetters, diagnose, published_chain


def w(start: int, end: int, rows: int = 0, offsets: dict | None = None, written: float = 0.0, table: str = "t") -> Watermark:
    return Watermark(table, end, "committed", f"{table}:{start}-{end}", start, rows, 0,
                     offsets if offsets is not None else {0: end}, written_at=written or float(end))


def test_the_chain_is_the_newest_run_of_consecutive_landed_windows_inside_the_range():
    marks = [w(0, 100), w(100, 200), w(200, 300), w(300, 400), w(400, 500)]
    chain, in_flight = published_chain(marks, 100, 450, next_offsets={0: 400})
    # [0,100) starts before the range, [400,500) ends after it; [300,400) has landed (offset 400).
    assert [(m.window_start, m.window_end) for m in chain] == [(100, 200), (200, 300), (300, 400)]
    assert in_flight == 0


def test_a_window_not_landed_yet_is_in_flight_not_lost():
    marks = [w(100, 200), w(200, 300, offsets={0: 300, 1: 7})]
    chain, in_flight = published_chain(marks, 0, 1000, next_offsets={0: 300, 1: 6})
    assert [(m.window_start, m.window_end) for m in chain] == [(100, 200)] and in_flight == 1


def test_a_replayed_window_counts_once_and_a_gap_ends_the_chain():
    marks = [w(100, 200, rows=5, written=1), w(300, 400, rows=1, written=2), w(100, 200, rows=6, written=3)]
    chain, _ = published_chain(marks, 0, 1000, next_offsets={0: 10_000})
    assert [(m.window_start, m.row_count) for m in chain] == [(300, 1)]  # [200,300) is missing: no chain across it
    chain, _ = published_chain(marks + [w(200, 300, rows=2, written=4)], 0, 1000, next_offsets={0: 10_000})
    assert [(m.window_start, m.row_count) for m in chain] == [(100, 6), (200, 2), (300, 1)]


def test_operator_moves_are_not_windows():
    seeded = Watermark("t", 200, "seeded", None, None)
    assert published_chain([seeded], 0, 1000, {0: 10}) == ([], 0)


def test_rows_in_the_source_never_published_are_blamed_on_the_producer():
    chain = [w(100, 200, rows=3)]
    source = {(1, 150), (2, 160), (3, 170), (4, 180)}
    raw = {(1, 150), (2, 160), (3, 170)}
    f = diagnose("t", chain, 0, source, raw, sample=10)
    assert (f.lost_in_extraction, f.lost_in_landing, f.missing) == (1, 0, 1)
    assert f.hops == ["source -> Kafka (producer)"] and f.missing_sample == [[4, 180]]


def test_published_rows_missing_from_raw_are_blamed_on_landing():
    chain = [w(100, 200, rows=4)]
    source = {(1, 150), (2, 160), (3, 170), (4, 180)}
    raw = {(1, 150), (2, 160)}
    f = diagnose("t", chain, 0, source, raw, sample=10)
    assert (f.lost_in_extraction, f.lost_in_landing) == (0, 2) and f.hops == ["Kafka -> raw (landing)"]


def test_a_row_updated_since_it_was_published_is_not_a_loss():
    chain = [w(100, 200, rows=2)]
    # Row 2 was published at cursor 160, then updated in the source to cursor 900 (outside the range).
    f = diagnose("t", chain, 0, source={(1, 150)}, raw={(1, 150), (2, 160)}, sample=10)
    assert f.hops == [] and "nothing lost" in f.summary()


def test_freshness_limits():
    cfg = DataQualityConfig(max_watermark_age_minutes=30, max_lag_messages=100, max_lag_minutes=10)
    now = 10_000
    latest = {"a": Watermark("a", now - 29 * 60, "committed"), "b": Watermark("b", now - 31 * 60, "committed")}
    out = {f.table: f for f in judge(["a", "b", "c"], now, latest, {"a": (101, 1.0), "b": (5, 11.0)}, cfg)}
    assert out["a"].stale_watermark is None and "101 messages" in out["a"].lagging
    assert "31.0 minutes" in out["b"].stale_watermark and "11.0 minutes" in out["b"].lagging
    assert out["c"].stale_watermark.startswith("no watermark") and out["c"].lagging is None


def test_freshness_of_a_debezium_table_is_its_lag_and_its_connector_not_a_watermark():
    cfg = DataQualityConfig(max_lag_messages=100)
    out = {f.table: f for f in judge(["polled", "cdc"], 10_000, {}, {"cdc": (101, 1.0)}, cfg,
                                     binlog=frozenset({"cdc"}), connector_down="connector x is PAUSED")}
    assert out["cdc"].stale_watermark is None and "101 messages" in out["cdc"].lagging
    assert out["cdc"].connector_down == "connector x is PAUSED"
    assert out["polled"].stale_watermark.startswith("no watermark") and out["polled"].connector_down is None


def test_dead_letters_are_taken_out_by_identity_never_blamed_on_a_hop_and_never_hiding_a_loss():
    chain = [Watermark("t", 200, "committed", "t:100-200", 100, 3, 1, {0: 3})]  # one row dead-lettered by the producer
    source = {(1, 150), (2, 160), (3, 170), (4, 180)}
    # Row 4 never reached the topic (producer dead letter), row 3 was rejected at landing.
    dead = DeadLetters.of([("producer", (4, 180)), ("landing", (3, 170)), ("landing", (9, 999))], 100, 200)
    f = diagnose("t", chain, 0, source, raw={(1, 150), (2, 160)}, sample=10, dead=dead)
    assert f.hops == [] and (f.dead_lettered, f.rejected_at_landing, f.missing) == (1, 1, 2)
    assert "nothing lost" in f.summary() and "1 rejected at landing" in f.summary()
    # A true loss beside a dead letter is still blamed on its hop.
    f = diagnose("t", chain, 0, source, raw={(1, 150)}, sample=10, dead=dead)
    assert f.hops == ["Kafka -> raw (landing)"] and f.lost_in_landing == 1 and f.lost_in_extraction == 0


def test_a_dead_letter_superseded_by_a_later_version_does_not_hide_a_loss():
    # Row 1's version at 120 was rejected at landing; its version at 150 landed. Row 2 was never
    # published: a count of dead letters would have cancelled it out.
    chain = [Watermark("t", 200, "committed", "t:100-200", 100, 2, 0, {0: 2})]
    dead = DeadLetters.of([("landing", (1, 120))], 100, 200)
    f = diagnose("t", chain, 0, source={(1, 150), (2, 160)}, raw={(1, 150)}, sample=10, dead=dead)
    assert f.hops == ["source -> Kafka (producer)"] and f.lost_in_extraction == 1 and f.missing_sample == [[2, 160]]


def test_a_dead_letter_record_tells_its_row_version_while_it_can():
    import orjson

    from consumers.lander import dead_letter_record
    from ordertrack.cli.wiring import dead_letter_version
    from ordertrack.config import load_pipeline_config
    from ordertrack.tables import TableRegistry
    from producers.rows import BadRow, dead_letter_value

    spec = TableRegistry(load_pipeline_config()).get("uni_tracking_spath")
    row = {"order_id": 7, "traceSeq": 2, "pathTime": 170, "event_code": "x"}
    landing = dead_letter_record(spec, {"partition": 0, "offset": 5, "reason": "r", "value": orjson.dumps(row).decode()})
    assert dead_letter_version(spec, landing) == ("landing", (7, 2, 170))
    producer = dead_letter_value(spec, BadRow("bad", row), "w1")
    assert dead_letter_version(spec, producer) == ("producer", (7, 2, 170))
    cut = dead_letter_record(spec, {"partition": 0, "offset": 6, "reason": "r",
                                    "value": orjson.dumps({**row, "event_desc": "x" * 100_000}).decode()})
    assert dead_letter_version(spec, cut) is None  # cut at 64 KiB: it no longer tells
    assert dead_letter_version(spec, b"not json") is None


def test_a_dead_letter_whose_row_did_not_serialise_never_breaks_the_check():
    """A row the producer could not serialise is kept as repr() strings; before, its string cursor
    made the range comparison raise TypeError and every extraction check failed for hours."""
    from ordertrack.cli.wiring import dead_letter_version
    from ordertrack.config import load_pipeline_config
    from ordertrack.tables import TableRegistry
    from producers.rows import BadRow, dead_letter_value
    from quality.extraction import DeadLetters

    spec = TableRegistry(load_pipeline_config()).get("uni_tracking_spath")
    unserialisable = {"order_id": 7, "traceSeq": 2, "pathTime": 170, "event_desc": b"\xff\xfe"}
    record = dead_letter_value(spec, BadRow("not UTF-8", unserialisable), "w1")
    stage, version = dead_letter_version(spec, record)
    assert stage == "producer" and version == ("7", "2", 170)  # keys as repr strings, cursor an integer
    odd = [dead_letter_version(spec, dead_letter_value(spec, BadRow("x", {**unserialisable, "pathTime": v}), "w"))
           for v in ("soon", None, 1.5)]
    assert odd == [None, None, None]
    dead = DeadLetters.of([(stage, version)], 100, 200)
    assert dead.producer == {("7", "2", 170)}
