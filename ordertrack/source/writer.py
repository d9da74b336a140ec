"""Writes `WorkloadModel` batches into the source tables, one transaction per slice."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pymysql

from ordertrack.settings import Settings
from ordertrack.source.connection import connect
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


def write_batch(conn: pymysql.connections.Connection, batch: Batch) -> None:
    """One source transaction: orders, their tracking rows and scan events, in time order."""
    if not len(batch) and not batch.tracking:
        return
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        try:
            if batch.orders:
                cur.executemany(INSERT_ORDER, [tuple(o[c] for c in ORDER_COLUMNS) for o in batch.orders])
            if batch.tracking:
                rows = sorted(batch.tracking.values(), key=lambda r: (r["update_time"], r["order_id"]))
                cur.executemany(UPSERT_TRACKING, [tuple(r[c] for c in TRACKING_COLUMNS) for r in rows])
            if batch.scans:
                cur.executemany(
                    INSERT_SCAN,
                    [
                        (e.order_id, e.trace_seq, e.path_time, e.event_code, e.event_code.replace("_", " ").lower(),
                         e.location, e.facility, f"op{e.order_id % 97:02d}", e.path_time)
                        for e in batch.scans
                    ],
                )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise


def open_workload_connection(settings: Settings) -> pymysql.connections.Connection:
    return connect(
        settings.mysql,
        user=settings.workload.user,
        password=settings.workload.password.get_secret_value(),
    )


def source_clock_and_next_id(conn: pymysql.connections.Connection) -> tuple[int, int]:
    """The source's own clock (unix seconds) and the next free order id."""
    with conn.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP(), COALESCE(MAX(order_id), 100000) + 1 FROM ecs_order_info")
        now, next_id = cur.fetchone()
    return int(now), int(next_id)


def run_history(
    conn: pymysql.connections.Connection,
    model: WorkloadModel,
    until: int,
    slice_seconds: int = 600,
    on_slice: Callable[[int, WriteTotals], None] | None = None,
) -> WriteTotals:
    """Play the model from its clock to `until`, one transaction per `slice_seconds`."""
    totals = WriteTotals()
    t = int(model.clock)
    while t < until:
        t = min(t + slice_seconds, until)
        batch = model.advance(t)
        write_batch(conn, batch)
        totals.add(batch)
        if on_slice:
            on_slice(t, totals)
    return totals


def run_live(
    conn: pymysql.connections.Connection,
    model: WorkloadModel,
    duration: float | None,
    clock_offset: float,
    tick_seconds: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> WriteTotals:
    """Keep writing in real time (the source's clock = local clock + `clock_offset`) until `duration`."""
    totals = WriteTotals()
    started = time.monotonic()
    try:
        while not should_stop() and (duration is None or time.monotonic() - started < duration):
            now = int(time.time() + clock_offset)
            if now > model.clock:
                batch = model.advance(now)
                write_batch(conn, batch)
                totals.add(batch)
            time.sleep(tick_seconds)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends live mode; every written slice was its own committed transaction
    return totals


__all__ = ["WorkloadModel", "WorkloadParams", "WriteTotals", "run_history", "run_live", "write_batch"]
