"""One table's timestamp poller: a window of rows and its watermark, in one Kafka transaction.

`run_window` keeps this order:
1. probe the source clock and its open transactions, then plan the window (`producers.window`);
2. take a consistent snapshot and begin the Kafka transaction;
3. stream the window's keyset pages: good rows to the table topic, bad rows to the dead-letter topic;
4. flush, so every row's partition and offset is known;
5. write the watermark record (with the per-partition end offsets) in the same transaction;
6. commit. Any failure or a stop request before that aborts: nothing of the window is visible
   to read_committed consumers, the watermark has not moved, and the next run redoes the window.

The transactional id is stable per table, so a restarted poller's `init_transactions` aborts a
crashed predecessor's open transaction before anything else happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_fixed

from ordertrack.config import PipelineConfig
from ordertrack.errors import OrdertrackError, ServiceUnavailableError
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.source.connection import connect
from ordertrack.tables import TableSpec
from ordertrack.watermarks.model import Watermark
from producers import metrics
from producers.reader import WindowReader, read_source_clock
from producers.rows import BadRow, dead_letter_value, encode_row
from producers.window import SourceClock, Window, plan_window

log = get_logger(__name__)

WindowStatus = Literal["published", "empty", "failed", "aborted"]


class StopRequested(OrdertrackError):
    """Ctrl-C or SIGTERM arrived mid-window; the open transaction is aborted."""

    exit_code = 130


class ClockDriftError(OrdertrackError):
    exit_code = 5


@dataclass
class WindowResult:
    table: str
    status: WindowStatus
    window_start: int | None = None
    window_end: int | None = None
    rows: int = 0
    dead_lettered: int = 0
    hold_seconds: int = 0
    hold_reason: str | None = None
    seconds: float = 0.0
    error: str | None = None
    partition_end_offsets: dict[int, int] = field(default_factory=dict)


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaException) and exc.args[0].retriable()


def producer_config(config: PipelineConfig, settings: Settings, table: str) -> dict:
    name = config.pipeline.name
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "client.id": f"{name}.producer.{table}",
        "transactional.id": f"{name}.producer.{table}",
        "transaction.timeout.ms": config.kafka.transaction_timeout_seconds * 1000,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        # The Java clients' partitioner: a key lands on the same partition whoever produces it.
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
        # Only failed deliveries call back: a Python callback per row costs more than the row's
        # serialization. End offsets come from the partitions' high watermarks instead (one writer).
        "delivery.report.only.error": True,
        "log_level": 3,
    }


class TablePoller:
    def __init__(
        self,
        spec: TableSpec,
        config: PipelineConfig,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        on_page: Callable[[int, int], None] | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.settings = settings
        self.stop = stop or threading.Event()
        self.on_page = on_page  # (page number, rows so far): progress and tests
        self._notes: set[str] = set()
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None
        self._delivery_errors: list[str] = []
        self._conn = None

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the source and init the transactional producer (fencing a crashed predecessor)."""
        self._conn = connect(
            self.settings.mysql,
            read_timeout=self.config.processing.query_timeout_seconds,
        )
        self._producer = self._new_producer()
        self._admin = AdminClient({"bootstrap.servers": self.settings.kafka.bootstrap_servers, "log_level": 0})
        try:
            self._producer.init_transactions(30)
        except KafkaException as exc:
            raise ServiceUnavailableError(
                f"Kafka at {self.settings.kafka.bootstrap_servers} did not start a transaction for "
                f"{self.spec.name}: {exc.args[0].str()}"
            ) from None

    def _new_producer(self) -> Producer:
        conf = producer_config(self.config, self.settings, self.spec.name)
        conf["on_delivery"] = self._on_delivery_error
        return Producer(conf)

    def _on_delivery_error(self, err: KafkaError | None, msg) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err.str()}")

    def _end_offsets(self) -> dict[int, int]:
        """High watermark of each partition of the table topic. This producer's transactional id
        is the topic's only writer, so right after a flush it is the offset after our last row."""
        md = self._admin.list_topics(self.spec.topic, timeout=15).topics[self.spec.topic]
        futures = self._admin.list_offsets(
            {TopicPartition(self.spec.topic, p): OffsetSpec.latest() for p in md.partitions},
            isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=15,
        )
        return {tp.partition: f.result().offset for tp, f in futures.items()}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    def measure_clock(self) -> tuple[SourceClock, float]:
        assert self._conn is not None, "open() first"
        return read_source_clock(self._conn, self._notes)

    # -- one window -----------------------------------------------------------------------------
    def run_window(
        self,
        watermark: Watermark | None,
        *,
        start_override: int | None = None,
        end_override: int | None = None,
    ) -> WindowResult:
        assert self._conn is not None and self._producer is not None, "open() first"
        started = time.monotonic()
        w = self.config.window_settings
        # 1. Probe before the snapshot: a writer that commits between the two is then either
        #    held for (seen open) or visible in the snapshot (committed first).
        clock, drift = read_source_clock(self._conn, self._notes)
        window = plan_window(
            self.spec.name,
            watermark.position if watermark else None,
            clock,
            lookback_minutes=w.lookback_minutes,
            buffer_minutes=w.buffer_minutes,
            max_hold_minutes=w.max_hold_minutes,
            start_override=start_override,
            end_override=end_override,
        )
        metrics.WINDOW_HOLD.labels(self.spec.name).set(window.hold_seconds)
        if window.hold_reason:
            log_fn = log.warning if window.hold_reason == "max_hold_reached" else log.info
            log_fn("producer.window.held", table=self.spec.name, hold_seconds=window.hold_seconds,
                   reason=window.hold_reason, oldest_open_trx_start=clock.oldest_open_trx_start,
                   replica_lag_seconds=clock.replica_lag_seconds)
        result = WindowResult(
            self.spec.name, "empty", window.start, window.end,
            hold_seconds=window.hold_seconds, hold_reason=window.hold_reason,
        )
        if window.empty:
            result.seconds = time.monotonic() - started
            return result
        try:
            self._publish(window, watermark, result)
        except StopRequested:
            self._abort()
            result.status, result.error = "aborted", "stopped before the window committed"
            raise
        except Exception as exc:
            self._abort()
            result.status = "failed"
            result.error = str(exc) if isinstance(exc, OrdertrackError) else f"{type(exc).__name__}: {exc}"
            log.error("producer.window.failed", table=self.spec.name, window_id=window.id, error=result.error)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _publish(self, window: Window, previous: Watermark | None, result: WindowResult) -> None:
        p, spec, k = self._producer, self.spec, self.config.kafka
        reader = WindowReader(self._conn, spec, spec.batch_size)
        self._delivery_errors.clear()
        null_cursors = reader.null_cursor_rows()
        if null_cursors:
            log.warning("producer.null_cursor_rows", table=spec.name, rows=null_cursors,
                        hint=f"rows with a NULL {spec.cursor_column} can never be published by timestamp")
        before = self._end_offsets()
        # 2. Snapshot and transaction.
        reader.begin_snapshot()
        p.begin_transaction()
        wid = window.id.encode()
        rows = bad = 0
        try:
            # 3. Pages.
            for n, page in enumerate(reader.pages(window.start, window.end), start=1):
                if self.stop.is_set():
                    raise StopRequested(f"stopped while publishing {window.id}")
                for row in page:
                    enc = encode_row(spec, row)
                    if isinstance(enc, BadRow):
                        self._produce(k.dead_letter_topic, spec.name.encode(),
                                      dead_letter_value(spec, enc, window.id), [("window_id", wid)])
                        bad += 1
                        continue
                    self._produce(spec.topic, enc.key, enc.value,
                                  [("window_id", wid), ("cursor", str(enc.cursor).encode())])
                    rows += 1
                p.poll(0)
                if self.on_page:
                    self.on_page(n, rows + bad)
        finally:
            reader.end_snapshot()
        # 4. Flush: every row delivered (inside the open transaction), offsets known.
        errors = self._delivery_errors
        if p.flush(k.transaction_timeout_seconds) > 0 or errors:
            raise ServiceUnavailableError(
                f"Kafka did not accept every row of {window.id}: {errors[0] if errors else 'flush timed out'}"
            )
        # Only partitions this window wrote to: elsewhere the high watermark still counts the
        # previous window's commit marker, and "end - 1" would not be a row a consumer can see.
        ends = {p: o for p, o in self._end_offsets().items() if o != before.get(p)}
        if self.stop.is_set():
            raise StopRequested(f"stopped before committing {window.id}")
        # 5. The watermark, in the same transaction.
        mark = Watermark(
            table=spec.name, position=window.end, status="committed", window_id=window.id,
            window_start=window.start, row_count=rows, dead_lettered=bad, partition_end_offsets=dict(ends),
            hold_seconds=window.hold_seconds, hold_reason=window.hold_reason, null_cursor_rows=null_cursors,
        )
        self._produce(k.watermark_topic, spec.name.encode(), mark.to_json(), [("window_id", wid)])
        # 6. Commit.
        self._commit()
        result.status, result.rows, result.dead_lettered = "published", rows, bad
        result.partition_end_offsets = dict(ends)
        metrics.ROWS_PUBLISHED.labels(spec.name).inc(rows)
        metrics.ROWS_DEAD_LETTERED.labels(spec.name).inc(bad)
        metrics.WATERMARK.labels(spec.name).set(window.end)
        log.info("producer.window.committed", table=spec.name, window_id=window.id, rows=rows,
                 dead_lettered=bad, previous=previous.position if previous else None)

    def _produce(self, topic: str, key: bytes, value: bytes, headers: list) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError:  # local queue full: let librdkafka send, then retry
                self._producer.poll(0.05)

    def _commit(self) -> None:
        timeout = self.config.kafka.transaction_timeout_seconds

        @retry(retry=retry_if_exception(_retriable), stop=stop_after_attempt(5), wait=wait_fixed(1), reraise=True)
        def commit() -> None:
            self._producer.commit_transaction(timeout)

        try:
            commit()
        except KafkaException as exc:
            raise ServiceUnavailableError(f"Committing the Kafka transaction failed: {exc.args[0].str()}") from None

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(30)
        except KafkaException as exc:
            err = exc.args[0]
            # No transaction in progress is fine; a fatal error needs a fresh producer.
            if err.fatal():
                log.error("producer.abort.fatal", table=self.spec.name, error=err.str())
                self._producer = self._new_producer()
                self._producer.init_transactions(30)
