"""Checks of command-line values that typer's types cannot express: each nonsense value becomes
one sentence naming the option (a `ConfigError`, exit 2) before anything connects anywhere."""

from __future__ import annotations

from ordertrack.errors import ConfigError
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.timeparse import format_utc, parse_duration, parse_utc


def duration(option: str, text: str, *, at_least: float = 1.0) -> float:
    """Seconds of a duration option; zero or less than `at_least` seconds is refused, since a loop
    or a flush timer that short only spins (the window ends have whole-second resolution)."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}.") from None
    if seconds < at_least:
        raise ConfigError(f"{option} {text} is too short: give at least {at_least:g}s.")
    return seconds


def utc_time(option: str, text: str) -> int:
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}.") from None


def time_range(start: int | None, end: int | None, names: tuple[str, str] = ("--from", "--to")) -> None:
    """A period [start, end) must hold at least one second."""
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"{names[0]} {format_utc(start)} is not before {names[1]} {format_utc(end)}: "
                          "the period [start, end) would be empty.")


def tables(registry: TableRegistry, names: list[str] | None) -> list[TableSpec]:
    """The configured tables named by a `--table` option (all of them when none is given)."""
    try:
        return registry.select(names)
    except KeyError as exc:
        raise ConfigError(f"{exc.args[0]}.") from None


def polled_tables(registry: TableRegistry, names: list[str] | None) -> list[TableSpec]:
    """The tables named (all when none is) that the timestamp poller carries; naming a Debezium
    table is a mistake worth a sentence, not a silent skip."""
    specs = tables(registry, names)
    named_binlog = [s.name for s in specs if s.binlog] if names else []
    if named_binlog:
        raise ConfigError(f"{', '.join(named_binlog)} is carried by binlog CDC (cdc_strategy: debezium), not "
                          "by the poller: see `ordertrack connectors status`.")
    return [s for s in specs if not s.binlog]


def table(registry: TableRegistry, name: str) -> TableSpec:
    try:
        return registry.get(name)
    except KeyError as exc:
        raise ConfigError(f"{exc.args[0]}.") from None
