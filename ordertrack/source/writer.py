"""Writes `WorkloadModel` batches into the source tables, one transaction per slice.

`SourceWriter` rides through a lost source: it reopens the connection with backoff and writes the
interrupted batch again, unless the batch turns out to have committed (the connection was lost
during COMMIT), so the totals count every written row once. A live batch written again is stamped
with the source's clock at that moment, as an application's retried transaction would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pymysql
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from ordertrack.outage import Outage, OutageReport
from ordertrack.settings import Settings
from ordertrack.source.connection import SourceUnreachableError, connect, one_row
from ordertrack.source.mysql_errors import connection_lost, error_text
from ordertrack.source.workload import Batch, WorkloadModel, WorkloadParams

ORDER_COLUMNS = (
    "order_id", "order_sn", "partner_id", "user_id", "order_status", "shipping_status", "pay_status",
    "consignee", "country", "province", "city", "district", "address", "zipcode", "mobile",
    "shipping_id", "shipping_name", "goods_amount", "shipping_fee", "order_amount", "weight_kg", "add_time",
)
TRACKING_COLUMNS = (
    "order_id", "tracking_number", "carrier_code", "state", "sub_state", "last_event_code",
    "last_location", "origin_country", "destination_country", "scan_count", "add_time", "update_time",
)
TRACKING_UPDATED = ("state", "last_event_code", "last_location", "scan_count", "update_time")
SCAN_COLUMNS = ("order_id", "traceSeq", "pathTime", "event_code", "event_desc", "location", "facility", "operator", "add_time")


def _insert_sql(table: str, columns: tuple[str, ...], upsert: tuple[str, ...] = ()) -> str:
    sql = f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    if upsert:
        sql += " ON DUPLICATE KEY UPDATE " + ", ".join(f"`{c}` = VALUES(`{c}`)" for c in upsert)
    return sql


INSERT_ORDER = _insert_sql("ecs_order_info", ORDER_COLUMNS)
UPSERT_TRACKING = _insert_sql("uni_tracking_info", TRACKING_COLUMNS, TRACKING_UPDATED)
INSERT_SCAN = _insert_sql("uni_tracking_spath", SCAN_COLUMNS)


@dataclass
class WriteTotals:
    orders: int = 0
    scans: int = 0
    tracking_writes: int = 0

    def merge(self, other: "WriteTotals") -> None:
        self.orders += other.orders
        self.scans += other.scans
        self.tracking_writes += other.tracking_writes

    def add(self, batch: Batch) -> None:
        self.orders += len(batch.orders)
        self.scans += len(batch.scans)
        self.tracking_writes += len(batch.tracking)


def order_rows(batch: Batch) -> list[tuple]:
    return [tuple(batch.stamp(o[c]) if c == "add_time" else o[c] for c in ORDER_COLUMNS) for o in batch.orders]


def tracking_rows(batch: Batch) -> list[tuple]:
    rows = sorted(batch.tracking.values(), key=lambda r: (r["update_time"], r["order_id"]))
    return [tuple(batch.stamp(r[c]) if c == "update_time" else r[c] for c in TRACKING_COLUMNS) for r in rows]


def scan_rows(batch: Batch) -> list[tuple]:
    # pathTime (the scan-event table's cursor) is when the parcel was scanned: in live mode the
    # application records a scan as it happens, so a scan written late carries the time it is
    # written, like add_time. (A real device uploading old scans late needs a window buffer that
    # covers the delay; the extraction check names such rows.)
    return [
        (e.order_id, e.trace_seq, batch.stamp(e.path_time), e.event_code, e.event_code.replace("_", " ").lower(),
         e.location, e.facility, f"op{e.order_id % 97:02d}", batch.stamp(e.path_time))
        for e in batch.scans
    ]


def write_batch(conn: pymysql.connections.Connection, batch: Batch) -> None:
    """One source transaction: orders, their tracking rows and scan events, in time order."""
    if not len(batch) and not batch.tracking:
        return
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        try:
            if batch.orders:
                cur.executemany(INSERT_ORDER, order_rows(batch))
            if batch.tracking:
                cur.executemany(UPSERT_TRACKING, tracking_rows(batch))
            if batch.scans:
                cur.executemany(INSERT_SCAN, scan_rows(batch))
            cur.execute("COMMIT")
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except pymysql.err.Error:
                pass  # a lost connection rolls back by itself; the first error is the one to report
            raise


def batch_committed(conn: pymysql.connections.Connection, batch: Batch) -> bool:
    """Whether `batch` is in the source: it is one transaction, so one of its rows tells. A batch
    of tracking upserts alone says False: writing it again changes nothing."""
    with conn.cursor() as cur:
        if batch.orders:
            cur.execute("SELECT 1 FROM `ecs_order_info` WHERE `order_id` = %s", (batch.orders[0]["order_id"],))
        elif batch.scans:
            e = batch.scans[0]
            cur.execute("SELECT 1 FROM `uni_tracking_spath` WHERE `order_id` = %s AND `traceSeq` = %s",
                        (e.order_id, e.trace_seq))
        else:
            return False
        return cur.fetchone() is not None


def _source_away(exc: BaseException) -> bool:
    return connection_lost(exc) or isinstance(exc, SourceUnreachableError)


WRITER_OUTAGES = OutageReport(
    started="generate.source.outage_started", ended="generate.source.outage_ended", field=None, gauge=None,
    describe=error_text, hint="retrying with backoff; the batch in flight is written once the source is back",
)


class SourceStopped(Exception):
    """A stop request arrived while the writer waited for the source to come back."""


class SourceWriter:
    """Writes batches through a connection it reopens when the source goes away: backoff, one
    warning when the outage starts and one info when it ends; the batch in flight is written
    again, or found committed."""

    def __init__(
        self,
        conn: pymysql.connections.Connection,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        max_backoff_seconds: float = 15.0,
    ) -> None:
        self.conn = conn
        self.should_stop = should_stop
        self.max_backoff_seconds = max_backoff_seconds
        self._lost_connection = False
        self._outage = Outage("source", WRITER_OUTAGES)  # the backoff is tenacity's, below
        self.last_written_at = 0
        """The newest stamp written: later live batches never stamp below it (cursors move forward)."""

    def write(self, batch: Batch) -> None:
        """Write `batch` once. Raises SourceStopped if stopped while the source is away (the batch
        is then not written), and any error that is not the source going away."""
        in_doubt = False  # a previous attempt may have committed before its connection was lost
        retrying = Retrying(
            retry=retry_if_exception(_source_away),
            wait=wait_exponential(multiplier=0.5, min=0.5, max=self.max_backoff_seconds),
            stop=lambda _: self.should_stop(),
            sleep=self._sleep,
            before_sleep=self._lost,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if self._lost_connection:
                        # The same settings (user, database, init command) on a new socket.
                        self.conn.ping(reconnect=True)
                        self._lost_connection = False
                        if batch.written_at is not None:
                            batch.written_at = max(batch.written_at, source_clock(self.conn))
                    if not (in_doubt and batch_committed(self.conn, batch)):
                        in_doubt = True
                        write_batch(self.conn, batch)
        except Exception as exc:
            if _source_away(exc) and self.should_stop():
                raise SourceStopped("stopped while the source was away") from None
            raise
        if batch.written_at is not None:
            self.last_written_at = max(self.last_written_at, batch.written_at)
        self._outage.recovered()

    def _lost(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._lost_connection = True
        try:
            self.conn.close()
        except pymysql.err.Error:
            pass  # already closed by the client library
        self._outage.failed(exc if exc is not None else "no error recorded")

    def _sleep(self, seconds: float) -> None:
        # Short naps, so a stop request is noticed within a fraction of a second while the source is away.
        deadline = time.monotonic() + seconds
        while not self.should_stop() and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


Writer = pymysql.connections.Connection | SourceWriter


def _writer(target: Writer, should_stop: Callable[[], bool] = lambda: False) -> SourceWriter:
    return target if isinstance(target, SourceWriter) else SourceWriter(target, should_stop=should_stop)


def open_workload_connection(settings: Settings) -> pymysql.connections.Connection:
    return connect(
        settings.mysql,
        user=settings.workload.user,
        password=settings.workload.password.get_secret_value(),
    )


def source_clock(conn: pymysql.connections.Connection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP()")
        return int(one_row(cur)[0])


def source_clock_and_next_id(conn: pymysql.connections.Connection) -> tuple[int, int]:
    """The source's own clock (unix seconds) and the next free order id."""
    with conn.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP(), COALESCE(MAX(order_id), 100000) + 1 FROM ecs_order_info")
        now, next_id = one_row(cur)
    return int(now), int(next_id)


def run_history(
    conn: Writer,
    model: WorkloadModel,
    until: int,
    slice_seconds: int = 600,
    on_slice: Callable[[int, WriteTotals], None] | None = None,
) -> WriteTotals:
    """Play the model from its clock to `until`, one transaction per `slice_seconds`."""
    writer = _writer(conn)
    totals = WriteTotals()
    t = int(model.clock)
    while t < until:
        t = min(t + slice_seconds, until)
        batch = model.advance(t)
        writer.write(batch)
        totals.add(batch)
        if on_slice:
            on_slice(t, totals)
    return totals


def run_live(
    conn: Writer,
    model: WorkloadModel,
    duration: float | None,
    clock_offset: float,
    tick_seconds: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> WriteTotals:
    """Keep writing in real time (the source's clock = local clock + `clock_offset`) until
    `duration`, riding through outages of the source (see `SourceWriter`). Rows carry the time
    they are written (`Batch.written_at`), as an application's would."""
    writer = _writer(conn, should_stop)
    totals = WriteTotals()
    started = time.monotonic()
    try:
        while not should_stop() and (duration is None or time.monotonic() - started < duration):
            now = int(time.time() + clock_offset)
            if now > model.clock:
                batch = model.advance(now)
                # A catch-up after an outage is stamped now, not over the gap; never before a batch
                # written again after an outage (stamped by the source's own clock meanwhile).
                batch.written_at = max(now, writer.last_written_at)
                writer.write(batch)
                totals.add(batch)
            time.sleep(tick_seconds)
    except (KeyboardInterrupt, SourceStopped):
        pass  # Ctrl-C ends live mode; every written slice was its own committed transaction
    return totals


__all__ = ["SourceWriter", "WorkloadModel", "WorkloadParams", "WriteTotals", "run_history", "run_live", "write_batch"]
