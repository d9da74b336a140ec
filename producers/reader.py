"""Reading a window of a source table: keyset pages on (cursor, tie-breaker), one snapshot.

All pages of a window are read inside one `READ ONLY ... WITH CONSISTENT SNAPSHOT` transaction,
so a row updated while the window is read is seen once, as it was when the window began; its new
version carries a newer cursor and arrives in a later window. Each page is streamed with an
unbuffered (server-side) cursor, so memory stays flat however large the window.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.cursors

from ordertrack.identifiers import quote_mysql
from ordertrack.log import get_logger
from ordertrack.tables import TableSpec
from producers.window import SourceClock

log = get_logger(__name__)


class WindowReader:
    def __init__(self, conn: pymysql.connections.Connection, spec: TableSpec, page_size: int) -> None:
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

    def begin_snapshot(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")

    def end_snapshot(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("COMMIT")

    def pages(self, start: int, end: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows with `start <= cursor < end`, in (cursor, tie-breaker) order."""
        params: tuple = (start, end)
        sql = self._first
        while True:
            with self.conn.cursor(pymysql.cursors.SSDictCursor) as cur:
                cur.execute(sql, params)
                page = list(cur.fetchall_unbuffered())
            if not page:
                return
            yield page
            if len(page) < self.page_size:
                return
            last = page[-1]
            lc, li = last[self.spec.cursor_column], last[self.spec.id_column]
            sql = self._next
            params = (lc, end, lc) if self._single else (lc, end, lc, li)

    def null_cursor_rows(self) -> int:
        """Rows no window can ever hold (their cursor is NULL); reported, never silently ignored."""
        with self.conn.cursor() as cur:
            cur.execute(self._nulls)
            return int(cur.fetchone()[0])


def read_source_clock(conn: pymysql.connections.Connection, notes: set[str]) -> tuple[SourceClock, float]:
    """The source's clock, its oldest open write transaction and replica lag; plus the drift in
    seconds against our clock (source minus ours). `notes` remembers which probes lack grants so
    the warning is said once."""
    with conn.cursor() as cur:
        t0 = time.time()
        cur.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
        t1 = time.time()
        db_exact = float(cur.fetchone()[0])
        drift = db_exact - (t0 + t1) / 2
        oldest = None
        if "innodb_trx" not in notes:
            try:
                # Our own snapshot and other pollers' read-only snapshots write nothing: left out.
                cur.execute(
                    "SELECT UNIX_TIMESTAMP(MIN(trx_started)) FROM information_schema.innodb_trx "
                    "WHERE trx_mysql_thread_id <> CONNECTION_ID() AND trx_is_read_only = 0 "
                    "AND trx_autocommit_non_locking = 0"
                )
                v = cur.fetchone()[0]
                oldest = None if v is None else int(v)
            except pymysql.err.OperationalError as exc:
                notes.add("innodb_trx")
                log.warning("producer.no_open_transaction_view", reason=str(exc.args[-1]),
                            hint="grant PROCESS to the pipeline user; windows now end at the buffer alone")
        lag = None
        if "replica" not in notes:
            try:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
                if row is not None:
                    cols = [d[0] for d in cur.description]
                    v = dict(zip(cols, row)).get("Seconds_Behind_Master")
                    if v is None:
                        log.warning("producer.replica_not_replicating",
                                    hint="replication is stopped; the window is not held for it")
                    else:
                        lag = int(v)
            except pymysql.err.OperationalError as exc:
                notes.add("replica")
                log.warning("producer.no_replica_status", reason=str(exc.args[-1]),
                            hint="grant SLAVE MONITOR (REPLICATION CLIENT) to the pipeline user")
    return SourceClock(db_now=int(db_exact), oldest_open_trx_start=oldest, replica_lag_seconds=lag), drift
