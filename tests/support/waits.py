"""Waiting on conditions with deadlines (never bare sleeps), and cutting a MariaDB session."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pymysql


def wait_until(what: str, check: Callable[[], Any], timeout: float = 90, every: float = 0.2,
               context: Callable[[], str] = lambda: "") -> Any:
    """Poll `check` until it returns something truthy (returned); fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{context()}")


def kill(admin: pymysql.connections.Connection, connection_id: int) -> None:
    """KILL a session, as a failover or a DBA would; one that ended by itself meanwhile is fine."""
    with admin.cursor() as cur:
        try:
            cur.execute(f"KILL CONNECTION {int(connection_id)}")
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1094:  # unknown thread id
                raise
