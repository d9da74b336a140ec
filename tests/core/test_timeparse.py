import pytest

from ordertrack.timeparse import format_utc, parse_duration, parse_utc


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("12", 12), ("1.5m", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration():
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_utc_round_trip():
    ts = parse_utc("2026-11-28 15:00:00")
    assert format_utc(ts) == "2026-11-28 15:00:00"
    assert parse_utc(str(ts)) == ts
    assert parse_utc("2026-11-28T16:00:00+01:00") == ts
    with pytest.raises(ValueError):
        parse_utc("yesterday")
