"""A child process's stderr read as it comes, so a test can wait for a log event in it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from tests.support.waits import wait_until


class Stderr:
    """Collects the lines of a child's stderr (`proc.stderr`, text mode) in a thread; JSON log
    events among them can be picked by name and fields."""

    def __init__(self, stream: Iterable[str]) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Iterable[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def count(self, needle: str) -> int:
        """Lines containing `needle`."""
        return sum(needle in line for line in list(self.lines))

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        """Until a line contains `needle`; fail with the last lines after `timeout`."""
        wait_until(f"{needle!r} in the log", lambda: self.count(needle), timeout=timeout,
                   context=lambda: "last lines: " + "".join(self.lines[-15:]))

    def events(self, name: str, **fields: Any) -> list[dict]:
        """The JSON log events named `name` whose fields include `fields`."""
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                e = json.loads(line)
                if e.get("event") == name and all(e.get(k) == v for k, v in fields.items()):
                    out.append(e)
        return out
