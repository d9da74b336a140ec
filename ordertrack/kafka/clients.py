"""One place that gives every confluent-kafka client the project's logging.

Left alone, librdkafka prints its own lines (`%3|1795927692.768|FAIL|...`) straight to stderr from
its threads, hundreds of them while a broker is away, around the one sentence a command ends with.
`routed(conf)` adds a `logger` and an `error_cb`, so those lines become structlog events
(`kafka.client.log`, `kafka.client.error`) that the client's own poll/flush calls deliver:

* a broker being away (connection refused, transport failure, all brokers down) is what the
  project's own outage handling already reports (one sentence, or one warning of a long-running
  process), so librdkafka's account of it is debug detail;
* any other librdkafka error or warning is a warning (the client goes on and retries; the project
  decides what is fatal when the failure reaches it), a critical one or a fatal error an error;
* librdkafka's notices and info lines are debug;
* a line repeated within `REPEAT_WINDOW_SECONDS` is counted, not logged again; the next one after
  the window carries the count (`repeated`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from ordertrack.kafka.errors import kafka_away
from ordertrack.log import get_logger

log = get_logger("ordertrack.kafka.librdkafka")

REPEAT_WINDOW_SECONDS = 60.0

# librdkafka's level filter (syslog numbering, 7 = debug): everything it logs without debug
# contexts is routed, and structlog's level decides what is shown.
LIBRDKAFKA_LOG_LEVEL = 6

_AWAY = re.compile(
    r"connection refused|connect to .* failed|disconnected|broker transport failure|all brokers are down"
    r"|timed out|connection reset|no route to host|failed to resolve|name or service not known"
    r"|network is unreachable|broken pipe",
    re.IGNORECASE,
)
_NUMBERS = re.compile(r"\d+")


class _RepeatFilter:
    """Lets the first of a kind of line through, then counts its repeats for a window."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._lock = threading.Lock()
        # (level, client, kind, text with its numbers masked) -> [first logged at (monotonic), repeats held back]
        self._seen: dict[tuple[str, str, str, str], list[float | int]] = {}

    def admit(self, level: str, client: str, kind: str, text: str) -> int | None:
        """None to drop the line; otherwise how many repeats it stands for (0 for a new line)."""
        key = (level, client, kind, _NUMBERS.sub("#", text))
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window:
                held = int(entry[1]) if entry else 0
                self._seen[key] = [now, 0]
                return held
            entry[1] = int(entry[1]) + 1
            return None


_repeats = _RepeatFilter(REPEAT_WINDOW_SECONDS)


def _emit(level: str, event: str, client: str, kind: str, text: str, **extra: Any) -> None:
    repeated = _repeats.admit(level, client, kind, text)
    if repeated is None:
        return
    fields: dict[str, Any] = {"client": client, **extra, "message": text}
    if repeated:
        fields["repeated"] = repeated
    getattr(log, level)(event, **fields)


def _level_of_line(pylevel: int, facility: str, text: str) -> str:
    if pylevel >= logging.CRITICAL:
        return "error"
    if pylevel >= logging.WARNING:
        return "debug" if _AWAY.search(text) else "warning"
    return "debug"


class LibrdkafkaLogger(logging.Logger):
    """The `logger` confluent-kafka hands librdkafka's lines to, as
    `log(level, "%s [%s] %s", facility, client name, text)`, from the thread that polls the client."""

    def __init__(self) -> None:
        super().__init__("librdkafka")

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if len(args) == 3:
            facility, client, text = (str(a) for a in args)
        else:
            facility, client, text = "", "", (str(msg) % args if args else str(msg))
        _emit(_level_of_line(level, facility, text), "kafka.client.log", client, facility, text, facility=facility)


def on_error(err: KafkaError) -> None:
    """librdkafka's error callback: a broker away is debug detail, a fatal error an error."""
    if err.fatal():
        level = "error"
    elif kafka_away(err) or _AWAY.search(err.str() or ""):
        level = "debug"
    else:
        level = "warning"
    _emit(level, "kafka.client.error", "", err.name(), err.str(), code=err.name())


_LOGGER = LibrdkafkaLogger()


def routed(conf: dict[str, Any]) -> dict[str, Any]:
    """`conf` with librdkafka's log lines and error events going through the project's logging.
    An `error_cb` already in `conf` is still called, after the event is logged."""
    theirs: Callable[[KafkaError], None] | None = conf.get("error_cb")
    if getattr(theirs, "routed", False):  # routed twice (a config built on a routed one): log once
        theirs = None

    def error_cb(err: KafkaError) -> None:
        on_error(err)
        if theirs is not None:
            theirs(err)

    error_cb.routed = True  # type: ignore[attr-defined]
    return {**conf, "logger": _LOGGER, "error_cb": error_cb, "log_level": LIBRDKAFKA_LOG_LEVEL}
