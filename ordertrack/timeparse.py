"""Durations (`15m`, `90s`, `2h`, `1d`) and UTC timestamps as the CLI accepts them."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import overload

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """Seconds in `text` (`30s`, `15m`, `2h`, `1d`; a bare number is seconds)."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h or 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def utc_naive(ts: datetime) -> datetime:
    """A time as warehouse TIMESTAMP columns hold it: UTC, without a zone."""
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


def parse_utc(text: str) -> int:
    """Unix seconds of `YYYY-mm-dd HH:MM:SS` (UTC), an ISO-8601 string, or a plain unix number."""
    s = text.strip()
    if s.isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time like '2026-11-28 15:00:00' (UTC) or unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


@overload
def format_utc(ts: float) -> str: ...
@overload
def format_utc(ts: None) -> None: ...
@overload
def format_utc(ts: float | None) -> str | None: ...
def format_utc(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
