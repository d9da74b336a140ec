"""One table's timestamp poller: a window of rows and its watermark, in Kafka transactions.

`run_window` keeps this order:
1. probe the source clock and its open transactions, then plan the window (`producers.window`);
2. per sub-window: take a consistent snapshot, begin the Kafka transaction, and decide where the
   sub-window ends (`max_window_rows`, `max_window_span_minutes`, always after a whole cursor
   second); a window within both limits is one sub-window;
3. stream the sub-window's keyset pages: good rows to the table topic, bad rows to the dead-letter topic;
4. flush, so every row's partition and offset is known;
5. write the watermark record (with the per-partition end offsets) in the same transaction;
6. commit, and go on with the next sub-window from its end. Any failure or a stop request before a
   commit aborts that sub-window: nothing of it is visible to read_committed consumers, the
   watermark stands at the last committed sub-window, and the next run resumes there.

A poller made for a backfill run (`backfill_run`) publishes bounded windows only: its records carry
status `backfill` and the run's id under their own key, and never move the table's live watermark.

The transactional id is stable per table and role (`<pipeline>.producer.<table>` for the live
windows, `<pipeline>.backfill.<table>` for backfills), so a restarted poller's `init_transactions`
aborts a crashed predecessor's open transaction before anything else happens, and a backfill and
the live producer never fence each other. The same holds within a process: a producer that lost
Kafka mid-transaction is dropped, and the fresh one fences it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from tenacity import retry, retry_if_exception, stop_after_attempt, stop_after_delay, wait_fixed

from ordertrack.config import PipelineConfig
from ordertrack.errors import OrdertrackError, ServiceUnavailableError
from ordertrack.kafka.clients import routed
from ordertrack.kafka.security import check_handshake, client_conf, refusal
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.source.connection import SourceUnreachableError, connect_reader
from ordertrack.source.mysql_errors import SOURCE_ERRORS
from ordertrack.tables import TableSpec
from ordertrack.watermarks.model import Watermark
from producers import metrics
from producers.outage import OutageError, Service, as_outage, kafka_away
from producers.reader import SourceProbe, WindowReader
from producers.rows import BadRow, dead_letter_value, encode_row
from producers.window import BackfillRun, Window, plan_window

log = get_logger(__name__)

WindowStatus = Literal["published", "empty", "failed", "aborted"]

ABORT_TIMEOUT_SECONDS = 10  # past it the producer is dropped; its successor's init_transactions aborts


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
    sub_windows: int = 0
    """Sub-windows committed (each its own transaction and watermark record)."""
    committed_end: int | None = None
    """End of the last committed sub-window: where a failed window's rerun resumes."""
    backfill: bool = False
    outage: Service | None = None
    """The service whose outage failed the window, if that is what failed it."""


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaException) and exc.args[0].retriable()


def producer_config(config: PipelineConfig, settings: Settings, table: str, *, backfill: bool = False) -> dict:
    ident = f"{config.pipeline.name}.{'backfill' if backfill else 'producer'}.{table}"
    return routed({
        **client_conf(settings.kafka),
        "client.id": ident,
        "transactional.id": ident,
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
        # serialization. End offsets come from the partitions' high watermarks instead: exact with
        # one writer, an upper bound while a backfill writes to the topic too (see `_end_offsets`).
        "delivery.report.only.error": True,
    })


class TablePoller:
    def __init__(
        self,
        spec: TableSpec,
        config: PipelineConfig,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        on_page: Callable[[int, int], None] | None = None,
        backfill_run: BackfillRun | None = None,
    ) -> None:
        self.spec = spec
        self.backfill_run = backfill_run
        self.config = config
        self.settings = settings
        self.stop = stop or threading.Event()
        self.on_page = on_page  # (page number, rows so far): progress and tests
        self.probe = SourceProbe()
        self._producer: Producer | None = None
        self._in_transaction = False
        self._admin: AdminClient | None = None
        self._delivery_errors: list[KafkaError] = []
        self._conn: Any = None  # a pymysql or mysqlclient connection (`connect_reader`)
        self._window_started = time.monotonic()

    # -- what `open()` made: used only after it, within a window or a clock check ----------------
    @property
    def _source_conn(self) -> Any:
        assert self._conn is not None, "open() first"
        return self._conn

    @property
    def _tx_producer(self) -> Producer:
        assert self._producer is not None, "open() first"
        return self._producer

    @property
    def _admin_client(self) -> AdminClient:
        assert self._admin is not None, "open() first"
        return self._admin

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the source and init the transactional producer (fencing a crashed
        predecessor), whichever is not open yet: at the first window, and again after an outage
        dropped one. Raises OutageError while a service is away."""
        if self._conn is None:
            try:
                self._conn = connect_reader(self.settings.mysql,
                                            read_timeout=self.config.processing.query_timeout_seconds)
            except SourceUnreachableError as exc:
                raise OutageError("source", str(exc)) from None
        if self._admin is None:
            check_handshake(self.settings.kafka)
            self._admin = AdminClient(routed(client_conf(self.settings.kafka)))
        if self._producer is None:
            producer = self._new_producer()
            try:
                producer.init_transactions(30)
            except KafkaException as exc:
                err = exc.args[0]
                msg = (f"Kafka at {self.settings.kafka.bootstrap_servers} did not start a transaction for "
                       f"{self.spec.name}: {err.str()}")
                refused = refusal(err, self.settings.kafka, producer_config(
                    self.config, self.settings, self.spec.name, backfill=self.backfill_run is not None)["transactional.id"])
                if refused is not None:
                    raise refused from None
                if kafka_away(err):
                    raise OutageError("kafka", msg) from None
                raise ServiceUnavailableError(msg) from None
            self._producer, self._in_transaction = producer, False

    def _new_producer(self) -> Producer:
        conf = producer_config(self.config, self.settings, self.spec.name, backfill=self.backfill_run is not None)
        conf["on_delivery"] = self._on_delivery_error
        return Producer(conf)

    def _on_delivery_error(self, err: KafkaError | None, msg) -> None:
        if err is not None:
            self._delivery_errors.append(err)

    def _end_offsets(self) -> dict[int, int]:
        """High watermark of each partition of the table topic. With the live producer the only
        writer, right after a flush it is the offset after our last row; while a backfill writes
        too it may be later (the other writer's rows, or its open transaction): an upper bound, so
        a window is judged landed (dq, reconcile) a little late, never early."""
        admin = self._admin_client
        admin.poll(0)  # an admin client hands over its queued log lines only when polled
        md = admin.list_topics(self.spec.topic, timeout=15).topics[self.spec.topic]
        if md.error is not None:
            raise KafkaException(md.error)
        futures = admin.list_offsets(
            {TopicPartition(self.spec.topic, p): OffsetSpec.latest() for p in md.partitions},
            isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=15,
        )
        return {tp.partition: f.result().offset for tp, f in futures.items()}

    def close(self) -> None:
        self._drop_connection()
        if self._producer is not None:
            if self._in_transaction:
                self._abort()
            if self._producer is not None:
                self._producer.flush(10)
            self._producer = None

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except SOURCE_ERRORS:
                pass  # already gone: that is why it is dropped

    def _drop_producer(self) -> None:
        """Forget a producer that cannot end its transaction; the next window starts a fresh one,
        whose init_transactions fences this one and aborts (or completes) what it left open."""
        producer, self._producer, self._in_transaction = self._producer, None, False
        if producer is not None:
            try:
                producer.purge(in_queue=True, in_flight=True, blocking=False)
            except KafkaException:
                pass

    def measure_clock(self) -> tuple[int, float]:
        """The source's clock (unix seconds) and our drift from it (source minus ours, seconds).
        Raises OutageError when the source is away."""
        self.open()
        try:
            return self.probe.clock(self._source_conn)
        except SOURCE_ERRORS as exc:
            outage = as_outage(exc, "the clock check")
            if outage is None:
                raise
            self._drop_connection()
            raise outage from None

    # -- one window -----------------------------------------------------------------------------
    def run_window(
        self,
        watermark: Watermark | None,
        *,
        start_override: int | None = None,
        end_override: int | None = None,
    ) -> WindowResult:
        """Plan and publish the table's next window, in sub-windows when it is large. Never raises
        for a failure of this table (the result says what failed) except on a stop request. A
        backfill poller publishes [start_override, end_override) only."""
        started = self._window_started = time.monotonic()
        w = self.config.window_settings
        backfill = self.backfill_run is not None
        if backfill and start_override is None:
            raise ValueError("a backfill poller publishes bounded windows only: give start_override")
        if not backfill and start_override is not None:
            raise ValueError("a bounded window is a backfill: use a poller made with backfill_run")
        result = WindowResult(self.spec.name, "empty", backfill=backfill)
        window: Window | None = None
        try:
            self.open()
            # 1. Probe before the snapshot: a writer that commits between the two is then either
            #    held for (seen open) or visible in the snapshot (committed first).
            clock, _ = self.probe.read(self._source_conn)
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
            result.window_start, result.window_end = window.start, window.end
            result.hold_seconds, result.hold_reason = window.hold_seconds, window.hold_reason
            metrics.WINDOW_HOLD.labels(self.spec.name).set(window.hold_seconds)
            if window.hold_reason:
                log_fn = log.warning if window.hold_reason == "max_hold_reached" else log.info
                log_fn("producer.window.held", table=self.spec.name, hold_seconds=window.hold_seconds,
                       reason=window.hold_reason, oldest_open_trx_start=clock.oldest_open_trx_start,
                       replica_lag_seconds=clock.replica_lag_seconds)
            if not window.empty:
                self._publish(window, watermark, result)
                result.status = "published"
        except StopRequested:
            self._abort()
            result.status, result.error = "aborted", "stopped before the window committed"
            raise
        except Exception as exc:
            where = f"{window.id if window else self.spec.name + ' (planning its window)'}"
            outage = as_outage(exc, where)
            if outage is not None:
                if outage.service == "source":
                    self._drop_connection()
                self._abort()
                result.status, result.outage, result.error = "failed", outage.service, str(outage)
                # Info: the outage itself is the one warning (producers.outage), however many windows it cuts.
                log.info("producer.window.interrupted", table=self.spec.name, window_id=window.id if window else None,
                            service=outage.service, committed_end=result.committed_end, error=str(outage))
            else:
                self._abort()
                result.status = "failed"
                result.error = str(exc) if isinstance(exc, OrdertrackError) else f"{type(exc).__name__}: {exc}"
                log.error("producer.window.failed", table=self.spec.name, window_id=window.id if window else None,
                          error=result.error)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _publish(self, window: Window, previous: Watermark | None, result: WindowResult) -> None:
        spec = self.spec
        reader = WindowReader(self._source_conn, spec, spec.batch_size)
        null_cursors = reader.null_cursor_rows()
        if null_cursors:
            log.warning("producer.null_cursor_rows", table=spec.name, rows=null_cursors,
                        hint=f"rows with a NULL {spec.cursor_column} can never be published by timestamp")
        start, pages = window.start, 0
        while start < window.end:
            if self.stop.is_set():
                raise StopRequested(f"stopped before publishing {spec.name}:{start}-{window.end}")
            start, pages = self._publish_sub_window(reader, window, start, null_cursors, result, pages)
        log.info("producer.window.committed", table=spec.name, window_id=window.id, rows=result.rows,
                 dead_lettered=result.dead_lettered, sub_windows=result.sub_windows, backfill=result.backfill,
                 previous=previous.position if previous else None)

    def _publish_sub_window(self, reader: WindowReader, window: Window, start: int, null_cursors: int,
                            result: WindowResult, pages: int) -> tuple[int, int]:
        """Publish `[start, end)` with its watermark in one Kafka transaction; return (end, pages so far)."""
        p, spec, k, w = self._tx_producer, self.spec, self.config.kafka, self.config.window_settings
        self._delivery_errors.clear()
        before = self._end_offsets()
        # 2. Snapshot and transaction, one each per sub-window: neither stays open for a whole catch-up.
        reader.begin_snapshot()
        ok = False
        try:
            end = reader.sub_window_end(start, window.end, w.max_window_rows, w.max_window_span_minutes * 60)
            wid = f"{spec.name}:{start}-{end}"  # deterministic: a redone sub-window carries the same id
            wid_b = wid.encode()
            p.begin_transaction()
            self._in_transaction = True
            rows = bad = 0
            produce, topic = p.produce, spec.topic  # bound once: this loop runs once per source row
            # 3. Pages.
            for page in reader.pages(start, end):
                if self.stop.is_set():
                    raise StopRequested(f"stopped while publishing {wid}")
                for row in page:
                    enc = encode_row(spec, row)
                    if isinstance(enc, BadRow):
                        self._produce(k.dead_letter_topic, spec.name.encode(),
                                      dead_letter_value(spec, enc, wid), [("window_id", wid_b)])
                        bad += 1
                        continue
                    headers: list[tuple[str, str | bytes | None]] = [("window_id", wid_b),
                                                                     ("cursor", str(enc.cursor).encode())]
                    try:
                        produce(topic, key=enc.key, value=enc.value, headers=headers)
                    except BufferError:  # the local queue is full: `_produce` waits for room
                        self._produce(topic, enc.key, enc.value, headers)
                    rows += 1
                p.poll(0)
                pages += 1
                if self.on_page:
                    self.on_page(pages, result.rows + result.dead_lettered + rows + bad)
            ok = True
        finally:
            if ok:
                reader.end_snapshot()
            else:
                reader.end_snapshot_quietly()
        # 4. Flush: every row delivered (inside the open transaction), offsets known.
        self._flush(wid)
        # Only partitions this sub-window wrote to: elsewhere the high watermark still counts the
        # previous commit marker, and "end - 1" would not be a row a consumer can see.
        ends = {p: o for p, o in self._end_offsets().items() if o != before.get(p)}
        if self.stop.is_set():
            raise StopRequested(f"stopped before committing {wid}")
        # 5. The watermark, in the same transaction.
        run = self.backfill_run
        mark = Watermark(
            table=spec.name, position=end, status="backfill" if run else "committed", window_id=wid,
            window_start=start, row_count=rows, dead_lettered=bad, partition_end_offsets=dict(ends),
            hold_seconds=window.hold_seconds, hold_reason=window.hold_reason, null_cursor_rows=null_cursors,
            run_id=run.run_id if run else None, run_start=run.start if run else None, run_end=run.end if run else None,
            seconds=round(time.monotonic() - self._window_started, 3),
        )
        self._produce(k.watermark_topic, mark.key, mark.to_json(), [("window_id", wid_b)])
        # 6. Commit.
        self._commit(wid)
        result.rows += rows
        result.dead_lettered += bad
        result.sub_windows += 1
        result.committed_end = end
        for part, offset in ends.items():
            result.partition_end_offsets[part] = offset
        metrics.ROWS_PUBLISHED.labels(spec.name).inc(rows)
        metrics.ROWS_DEAD_LETTERED.labels(spec.name).inc(bad)
        metrics.SUB_WINDOWS.labels(spec.name).inc()
        if not result.backfill:
            metrics.WATERMARK.labels(spec.name).set(end)
        if end < window.end:
            log.info("producer.sub_window.committed", table=spec.name, window_id=wid, rows=rows, dead_lettered=bad,
                     backfill=result.backfill, remaining_until=window.end)
        return end, pages

    def _produce(self, topic: str, key: bytes, value: bytes, headers: list) -> None:
        deadline = None
        while True:
            try:
                self._tx_producer.produce(topic, key=key, value=value, headers=headers)
                return
            except BufferError:  # local queue full: let librdkafka send, then retry
                self._tx_producer.poll(0.05)
                # A queue that stays full means the broker takes nothing: Kafka is away.
                deadline = deadline or time.monotonic() + self.config.kafka.transaction_timeout_seconds
                if self.stop.is_set():
                    raise StopRequested("stopped while Kafka's queue was full") from None
                if time.monotonic() > deadline:
                    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "the local queue stayed full")) from None

    def _flush(self, wid: str) -> None:
        left = self._tx_producer.flush(self.config.kafka.transaction_timeout_seconds)
        errors = self._delivery_errors
        if not left and not errors:
            return
        err = errors[0] if errors else KafkaError(KafkaError._TIMED_OUT, "flush timed out")
        if left or kafka_away(err):
            raise KafkaException(err)  # an outage: the caller aborts and the window is redone
        raise ServiceUnavailableError(f"Kafka did not accept every row of {wid}: {err.str()}")

    def _commit(self, wid: str) -> None:
        budget = self.config.kafka.transaction_timeout_seconds

        # A retriable error (a timeout) leaves the commit going on in the background: asking again
        # resumes it. Bounded by the transaction timeout, past which the broker aborts anyway.
        @retry(retry=retry_if_exception(_retriable), stop=stop_after_attempt(5) | stop_after_delay(budget),
               wait=wait_fixed(1), reraise=True)
        def commit() -> None:
            self._tx_producer.commit_transaction(min(budget, 15))

        try:
            commit()
        except KafkaException as exc:
            err = exc.args[0]
            if kafka_away(err):
                raise  # an outage: whether it committed is settled by the next producer's init_transactions
            raise ServiceUnavailableError(f"Committing the Kafka transaction of {wid} failed: {err.str()}") from None
        self._in_transaction = False

    def _abort(self) -> None:
        """Abort the open transaction, if any, so nothing of it becomes visible. A producer that
        cannot (Kafka away, a fatal error, a commit of unknown outcome) is dropped instead."""
        if self._producer is None or not self._in_transaction:
            return
        try:
            self._producer.abort_transaction(ABORT_TIMEOUT_SECONDS)
            self._in_transaction = False
        except KafkaException as exc:
            # Kafka being away is the outage already reported; anything else is worth a warning.
            log_fn = log.info if kafka_away(exc.args[0]) else log.warning
            log_fn("producer.abort.failed", table=self.spec.name, error=exc.args[0].str(),
                   hint="a fresh producer fences this one before the next window")
            self._drop_producer()
