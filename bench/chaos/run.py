"""What the faults and the phases share: waits that supervise the children, and the probes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.chaos.processes import Exit, LogTail, Supervisor
from bench.chaos.services import PrivateStack, cli_json
from bench.chaos.settings import LAG_SLACK, Layout, Profile


@dataclass
class Injection:
    """What a fault did: when it started, when the outage it caused ended, and what it saw."""

    injected_at: float
    ended_at: float
    detail: dict[str, Any] = field(default_factory=dict)
    also_recovered: Callable[[], bool] | None = None  # a fault-specific recovery condition


@dataclass
class FaultRecord:
    name: str
    label: str
    injected_at: float
    ended_at: float
    recovered_at: float | None
    recovery_seconds: float | None
    not_recovered_because: str | None
    detail: dict[str, Any]
    longest_landing_gap_seconds: float | None = None
    lost: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    duplicated_raw: dict[str, int] = field(default_factory=dict)
    duplicated_mart: dict[str, int] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)


class Run:
    """The shared state the faults and waits work with."""

    def __init__(self, layout: Layout, profile: Profile, stack: PrivateStack, procs: Supervisor,
                 tables: list[dict[str, Any]]) -> None:
        self.layout, self.profile, self.stack, self.procs, self.tables = layout, profile, stack, procs, tables
        self.why_not = ""  # the last reason a wait's condition did not hold, for the report

    # Waiting. Every wait supervises the children; restarts only where an outage has ended.
    def wait_until(self, ready: Callable[[], bool], timeout: float, restart: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._supervise(restart)
            if ready():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self.profile.poll, max(0.0, deadline - time.monotonic())))

    def hold(self, seconds: float, restart: bool = False) -> None:
        """Let a planned span pass (an outage's length, a spacing): not a wait for correctness."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._supervise(restart)
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def wait_event(self, tail: LogTail, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """Poll a log closely (a fault aimed at the middle of some work must hit it in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in tail.events():
                if match(e):
                    return e
            self.procs.check()
            time.sleep(0.05)
        return None

    def _supervise(self, restart: bool) -> None:
        if restart:
            self.procs.restart_down()
        else:
            self.procs.check()

    # Probes, through the CLI under test.
    def watermarks(self) -> dict[str, dict[str, Any]] | None:
        rows = cli_json(self.layout, "watermarks", "show", "--json", timeout=60)
        if rows is None:
            self.why_not = "`watermarks show` failed"
            return None
        return {r["table"]: r for r in rows}

    def positions(self) -> dict[str, int]:
        marks = self.watermarks() or {}
        return {t: m["position"] for t, m in marks.items() if m.get("position") is not None}

    def lag_ok(self, require_data: bool = False) -> bool:
        """Landing caught up (only transaction markers left); with `require_data`, also every
        table has published something."""
        rows = cli_json(self.layout, "lag", "--json", timeout=120)
        if rows is None:
            self.why_not = "`lag` failed"
            return False
        empty = [s["name"] for s in self.tables if not any(r["end_offset"] for r in rows if r["table"] == s["name"])]
        if require_data and empty:
            self.why_not = "nothing published yet for " + ", ".join(empty)
            return False
        behind = [f"{r['table']}[{r['partition']}] {r['lag_messages']}" for r in rows if r["lag_messages"] > LAG_SLACK]
        if behind:
            self.why_not = "lag: " + ", ".join(behind)
            return False
        return True

    def committed_since(self, since: float, before: dict[str, int]) -> bool:
        """Every table's watermark was committed after `since` and has moved past `before`."""
        marks = self.watermarks()
        if marks is None:
            return False
        for spec in self.tables:
            m = marks.get(spec["name"]) or {}
            written = _utc(m.get("written_at_utc"))
            if m.get("position") is None or written is None or written < since or m["position"] <= before.get(spec["name"], -1):
                self.why_not = f"watermark of {spec['name']} not committed since the fault"
                return False
        return True

    def source_max_cursors(self) -> dict[str, int] | None:
        rows = cli_json(self.layout, "source", "counts", "--json", timeout=120)
        return None if rows is None else {r["table"]: r["max_cursor"] or 0 for r in rows}


def _utc(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace(" ", "T") + "+00:00").timestamp()


