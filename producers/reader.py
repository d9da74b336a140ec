"""Reading a window of a source table: keyset pages on (cursor, tie-breaker), one snapshot.

All pages of a (sub-)window are read inside one `READ ONLY ... WITH CONSISTENT SNAPSHOT`
transaction, so a row updated while the window is read is seen once, as it was when the window
began; its new version carries a newer cursor and arrives in a later window. Each page is streamed
with an unbuffered (server-side) cursor, so memory stays flat however large the window.

`SourceProbe` asks the source for its clock, its oldest open write transaction and its replica lag
before a window is planned (see `producers.window`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from ordertrack.errors import TransientError
from ordertrack.identifiers import quote_mysql
from ordertrack.log import get_logger
from ordertrack.source.connection import one_row, unbuffered_dicts
from ordertrack.source.mysql_errors import SOURCE_ERRORS, connection_lost, error_text, privilege_missing, syntax_error
from ordertrack.tables import TableSpec
from producers.window import SourceClock

log = get_logger(__name__)


class WindowReader:
    def __init__(self, conn: Any, spec: TableSpec, page_size: int) -> None:
        """`conn`: a pymysql or mysqlclient connection (`ordertrack.source.connection.connect_reader`)."""
        self.conn = conn
        self.spec = spec
        self.page_size = page_size
        table = f"{quote_mysql(spec.database)}.{quote_mysql(spec.name)}"
        c, i = quote_mysql(spec.cursor_column), quote_mysql(spec.id_column)
        self._single = spec.cursor_column == spec.id_column
        order = f"{c}" if self._single else f"{c}, {i}"
        self._first = f"SELECT * FROM {table} WHERE {c} >= %s AND {c} < %s ORDER BY {order} LIMIT {int(page_size)}"
        # The expanded form of (c, i) > (last_c, last_i) keeps the range on the cursor index usable.
        after = f"{c} > %s" if self._single else f"({c} > %s OR {i} > %s)"
        self._next = (
            f"SELECT * FROM {table} WHERE {c} >= %s AND {c} < %s AND {after} ORDER BY {order} LIMIT {int(page_size)}"
        )
        self._nulls = f"SELECT COUNT(*) FROM {table} WHERE {c} IS NULL"
        self._first_cursor = f"SELECT MIN({c}) FROM {table} WHERE {c} >= %s AND {c} < %s"
        # The cursor index alone answers both: no row is read.
        self._nth_cursor = f"SELECT {c} FROM {table} WHERE {c} >= %s AND {c} < %s ORDER BY {c} LIMIT 1 OFFSET %s"

    def begin_snapshot(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")

    def end_snapshot(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("COMMIT")

    def end_snapshot_quietly(self) -> None:
        """End the snapshot after a failure, which stays the error reported: a lost connection
        has no snapshot left to end."""
        try:
            self.end_snapshot()
        except SOURCE_ERRORS:
            pass

    def pages(self, start: int, end: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows with `start <= cursor < end`, in (cursor, tie-breaker) order."""
        params: tuple = (start, end)
        sql = self._first
        while True:
            page = unbuffered_dicts(self.conn, sql, params)
            if not page:
                return
            yield page
            if len(page) < self.page_size:
                return
            last = page[-1]
            lc, li = last[self.spec.cursor_column], last[self.spec.id_column]
            sql = self._next
            params = (lc, end, lc) if self._single else (lc, end, lc, li)

    def sub_window_end(self, start: int, end: int, max_rows: int, max_span_seconds: int) -> int:
        """Where the sub-window starting at `start` ends (exclusive), at most `end`: it holds at most
        `max_rows` rows and `max_span_seconds` of cursor time from its first row, and always ends on
        a whole cursor second, so rows sharing a cursor value are published together (a single
        second with more than `max_rows` rows is one sub-window of its own). Read in the snapshot."""
        first = self._scalar(self._first_cursor, (start, end))
        if first is None or not _numeric(first):
            return end  # nothing left (one watermark record closes the window), or not a number to split on
        limit = min(end, math.floor(first) + max_span_seconds)
        over = self._scalar(self._nth_cursor, (start, limit, max_rows))  # the row after the first max_rows
        if over is None or not _numeric(over):
            return limit
        cut = math.floor(over)
        # Every row below `cut` is among the first max_rows; a first second holding more than
        # max_rows rows still goes whole.
        first_second = math.floor(first)
        return min(limit, cut if cut > first_second else first_second + 1)

    def _scalar(self, sql: str, params: tuple) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
        return None if row is None else row[0]

    def null_cursor_rows(self) -> int:
        """Rows no window can ever hold (their cursor is NULL); reported, never silently ignored."""
        with self.conn.cursor() as cur:
            cur.execute(self._nulls)
            return int(one_row(cur)[0])


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


class SourceProbe:
    """The source's clock, its oldest open write transaction and its replica lag, asked before each
    window. Remembers what the server cannot answer so each gap is warned about once: a missing
    grant switches a probe off (the window then ends at the buffer alone), and the replica status
    statement that works here (`SHOW REPLICA STATUS` on MySQL 8.0.22+ / MariaDB 10.5+, `SHOW SLAVE
    STATUS` before; MySQL 8.4 has only the former). Anything else the probe meets (a killed
    query, a statement timeout, a lock wait) fails this window with TransientError, so it is
    retried next cycle; it never switches the hold off. A lost connection is raised as it is."""

    REPLICA_STATEMENTS = ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS")

    def __init__(self) -> None:
        self.open_transactions_visible = True
        self.replica_status_visible = True
        self.replica_statement: str | None = None  # the one this server answered

    def read(self, conn: Any) -> tuple[SourceClock, float]:
        """The clock reading, plus the drift in seconds against our clock (source minus ours)."""
        with conn.cursor() as cur:
            db_exact, drift = self._clock(cur)
            oldest = self._oldest_open_transaction(cur) if self.open_transactions_visible else None
            lag = self._replica_lag(cur) if self.replica_status_visible else None
        return SourceClock(db_now=int(db_exact), oldest_open_trx_start=oldest, replica_lag_seconds=lag), drift

    def clock(self, conn: Any) -> tuple[int, float]:
        """Only the clock: (source now in unix seconds, drift against ours)."""
        with conn.cursor() as cur:
            db_exact, drift = self._clock(cur)
        return int(db_exact), drift

    @staticmethod
    def _clock(cur) -> tuple[float, float]:
        t0 = time.time()
        cur.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
        t1 = time.time()
        db_exact = float(cur.fetchone()[0])
        return db_exact, db_exact - (t0 + t1) / 2

    def _oldest_open_transaction(self, cur) -> int | None:
        try:
            # Our own snapshot and other pollers' read-only snapshots write nothing: left out.
            cur.execute(
                "SELECT UNIX_TIMESTAMP(MIN(trx_started)) FROM information_schema.innodb_trx "
                "WHERE trx_mysql_thread_id <> CONNECTION_ID() AND trx_is_read_only = 0 "
                "AND trx_autocommit_non_locking = 0"
            )
            v = cur.fetchone()[0]
        except SOURCE_ERRORS as exc:
            self._triage(exc, "open transactions", "transactions it cannot see")
            self.open_transactions_visible = False
            log.warning("producer.no_open_transaction_view", reason=error_text(exc),
                        hint="grant PROCESS to the pipeline user; windows now end at the buffer alone")
            return None
        return None if v is None else int(v)

    def _replica_lag(self, cur) -> int | None:
        statements = [self.replica_statement] if self.replica_statement else list(self.REPLICA_STATEMENTS)
        for stmt in statements:
            try:
                cur.execute(stmt)
                rows = cur.fetchall()
            except SOURCE_ERRORS as exc:
                if syntax_error(exc) and self.replica_statement is None:
                    continue  # this server knows the other spelling
                self._triage(exc, "replica status", "rows the replica has not applied")
                self.replica_status_visible = False
                log.warning("producer.no_replica_status", reason=error_text(exc),
                            hint="grant SLAVE MONITOR (REPLICATION CLIENT) to the pipeline user")
                return None
            self.replica_statement = stmt
            return self._lag_of(cur, rows)
        self.replica_status_visible = False
        log.warning("producer.no_replica_status", reason="neither SHOW REPLICA STATUS nor SHOW SLAVE STATUS is known",
                    hint="windows are not held for replica lag")
        return None

    @staticmethod
    def _triage(exc: Exception, what: str, unseen: str) -> None:
        """Decide what a failed probe statement means; returns only when a grant is missing (the
        caller then switches its probe off and says so once). A lost connection is raised as it
        is; anything else fails the window with TransientError, so it is retried next cycle
        rather than run past `unseen`."""
        if connection_lost(exc):
            raise exc
        if privilege_missing(exc):
            return
        raise TransientError(
            f"The source's {what} could not be read ({error_text(exc)}); the window waits "
            f"for the next cycle rather than run past {unseen}."
        ) from None

    @staticmethod
    def _lag_of(cur, rows: list) -> int | None:
        """The largest lag over the replication channels; None when this server is no replica."""
        if not rows:
            return None
        cols = [d[0] for d in cur.description]
        lags = []
        for row in rows:
            d = dict(zip(cols, row))
            v = d.get("Seconds_Behind_Source", d.get("Seconds_Behind_Master"))
            if v is None:
                log.warning("producer.replica_not_replicating",
                            hint="replication is stopped; the window is not held for it")
            else:
                lags.append(int(v))
        return max(lags) if lags else None
