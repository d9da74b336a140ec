"""Landing one batch of one table: schema first, then one warehouse transaction with its dead letters.

Steps of `land`:
1. stage the messages (Arrow, values still JSON);
2. if the batch carries keys the raw table lacks, add those columns (types from the source
   catalog) before landing, so a column added in the source arrives without a restart; a key
   that can never be a column name (`"bad-key"`, `"a;b"`) rejects its message instead; if it
   carries values a raw column cannot take as they are (rounded, cut, out of range), widen the
   columns the source has widened; the merge widens the marts and history tables the same way;
3. `engine.land`: raw rows + ledger + exceptions + merge, one transaction, offsets already
   landed skipped; just before it commits, the rejected messages go to the dead-letter topic
   and must be acknowledged, so an exceptions row never exists without its dead letter;
4. if the merge failed (`MergeFailed`, nothing committed), the same batch lands again without
   it, marked unmerged in the ledger, so a merge bug never stops landing; the sidecar's merge
   job or `ordertrack marts run` merges it later.

`land` either lands the whole batch or raises with nothing committed; the caller keeps the
messages and tries again (the worker waits out an outage, a one-shot command exits 4).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

from consumers import metrics
from consumers.envelopes import CDC_COLUMNS, unwrap
from consumers.staging import Gathered, RawMessage, key_reason, stage
from ordertrack.config import PipelineConfig
from ordertrack.errors import SecurityError, ServiceUnavailableError
from ordertrack.identifiers import quote_ansi as quote
from ordertrack.identifiers import validate_identifier
from ordertrack.kafka.clients import routed
from ordertrack.kafka.security import client_conf, refusal
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.source.columns import source_columns
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import AfterLanding, LandResult, MergeFailed, MisfitColumns, Misfits, WarehouseEngine
from ordertrack.warehouse.pending import merge_pending
from ordertrack.warehouse.typed import ParsedBatch, parse
from ordertrack.warehouse.types import Column, warehouse_type

log = get_logger(__name__)

DEAD_LETTER_VALUE_CHARS = 65_536
"""A rejected value longer than this is cut in its dead letter, with its size and SHA-256 kept:
the dead-letter record (value plus metadata, JSON-escaped) must fit the topic's record limit
(1 MB by default) even when the message it reports filled that limit by itself."""


class Lander:
    def __init__(self, engine: WarehouseEngine, config: PipelineConfig, settings: Settings,
                 after_landing: AfterLanding | None = None) -> None:
        self.engine = engine
        self.after_landing = after_landing  # the mart merge, wired in by the CLI
        self.config = config
        self.settings = settings
        self._dlq = Producer(routed({
            **client_conf(settings.kafka),
            "client.id": f"{config.pipeline.name}.landing.dlq",
            "enable.idempotence": True,
        }))
        self._dlq_lock = threading.Lock()

    def ensure_table(self, spec: TableSpec) -> list[str]:
        """Create or widen the raw table from the source catalog; return the columns added."""
        return self._widen(spec)[0]

    def _widen(self, spec: TableSpec) -> tuple[list[str], set[str]]:
        """`ensure_table`, also returning the source catalog's column names (all in the raw table now)."""
        cols = [Column(c.name, warehouse_type(c)) for c in source_columns(self.settings.mysql, spec)]
        if spec.binlog:
            cols += CDC_COLUMNS
        added = self.engine.ensure_raw_table(spec, cols)
        if added:
            log.info("landing.columns.added", table=spec.raw_table, columns=added)
        return added, {c.name for c in cols}

    def land(self, spec: TableSpec, messages: Sequence[RawMessage] | Gathered,
             expected: dict[int, int] | None = None) -> LandResult:
        """`expected`: partition -> the offset the caller reads on from (its seek position, then the
        offset after its last landed batch); a replay that moved landing back below it since makes
        the engine raise `LedgerRewound` with nothing committed."""
        if not len(messages):
            return LandResult()
        if isinstance(messages, Gathered) and not spec.binlog:
            batch = messages.staged()
        else:
            listed = messages.messages() if isinstance(messages, Gathered) else messages
            batch = stage(unwrap(listed) if spec.binlog else listed)
        raw = self.engine.raw_columns(spec)
        staged = parse(batch, {c: t for c, t in raw.items() if not c.startswith("_")})
        added: list[str] = []
        existing = set(raw)
        unknown = staged.keys - existing
        if unknown:
            folded = {c.lower() for c in existing}
            # Not a name SQL can carry, or one that differs from a column only by case (quoted
            # names keep their case, but two columns differing only by case confuse every reader):
            # its messages are dead letters, never an ALTER that fails the batch.
            poison = {k for k in unknown if not _is_identifier(k) or k.lower() in folded}
            if poison:
                log.warning("landing.keys.rejected", table=spec.name, keys=[k[:64] for k in sorted(poison)[:20]])
                staged.reject_keys(poison, key_reason)
            if unknown - poison:
                added, in_source = self._widen(spec)
                still = unknown - poison - in_source
                if still:  # rare: read again, for columns another process added meanwhile
                    still -= set(self.engine.raw_columns(spec))
                if still:
                    # Keys the source catalog does not know (dropped since?): kept as text, never lost.
                    added += self.engine.ensure_raw_table(spec, [Column(k, "VARCHAR(65535)") for k in sorted(still)])
                    log.warning("landing.columns.not_in_source", table=spec.name, columns=sorted(still))
        try:
            result = self._land_merged(spec, staged, misfits="raise", expected=expected)
        except MisfitColumns as misfit:
            # Values a raw column cannot take as they are (nothing was committed): the source may
            # have widened the column (DECIMAL scale, INT -> BIGINT, a longer VARCHAR). Follow the
            # catalog, then land again; what still does not fit is rejected, naming the column.
            self._widen(spec)
            log.info("landing.values.checked", table=spec.name, columns=sorted(misfit.columns))
            result = self._land_merged(spec, staged, misfits="reject", expected=expected)
        result.skipped += len(messages) - staged.num_rows  # repeats inside the batch
        result.added_columns = added
        if spec.binlog and result.landed and result.batch_id:
            # `_ingested_at` is raw's sort key (Redshift) and rises with every append (DuckDB zone
            # maps): bounded to the last hour, the count reads the newest blocks, not all of raw.
            # The hour is slack for the clocks of this host and the warehouse.
            recent = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
            ph = self.engine.placeholder
            result.deletes = self.engine.query(
                f"SELECT COUNT(*) FROM {quote(spec.raw_schema)}.{quote(spec.raw_table)} "
                f"WHERE _ingested_at >= {ph} AND _batch_id = {ph} AND cdc_op = 'd'", [recent, result.batch_id])[0][0]
            metrics.ROWS_DELETED.labels(spec.name).inc(result.deletes)
        for r in result.rejected:
            log.warning("landing.rejected", table=spec.name, partition=r["partition"], offset=r["offset"], reason=r["reason"])
        metrics.ROWS_LANDED.labels(spec.name).inc(result.landed)
        metrics.ROWS_REJECTED.labels(spec.name).inc(len(result.rejected))
        return result

    def _land_merged(self, spec: TableSpec, staged: ParsedBatch, misfits: Misfits,
                     expected: dict[int, int] | None) -> LandResult:
        """One landing transaction with the merge; if the merge fails, one more without it."""
        def before_commit(rejected: list[dict[str, Any]]) -> None:
            self._dead_letter(spec, rejected)

        after = self.after_landing
        if after is not None and spec.binlog and not self._merged_up_to_now(spec, after):
            after = None  # change events merge in binlog order: after the older unmerged batches
        try:
            return self.engine.land(spec, spec.topic, staged, after=after, before_commit=before_commit,
                                    misfits=misfits, expected=expected)
        except MergeFailed as failed:
            # The engine rolled the whole batch back (rows, ledger, exceptions; its dead letters
            # were not sent yet), so landing it again unmerged neither loses nor repeats anything.
            error = f"{type(failed.__cause__).__name__}: {failed.__cause__}"
            log.error("marts.merge.failed", table=spec.name, error=error,
                      hint="the batch lands unmerged; the sidecar's merge job or `ordertrack marts run` merges it")
            result = self.engine.land(spec, spec.topic, staged, after=None, before_commit=before_commit,
                                      misfits=misfits, expected=expected)
            result.merge_error = error
            return result

    def _merged_up_to_now(self, spec: TableSpec, merge: AfterLanding) -> bool:
        """Merge a Debezium table's unmerged batches (a merge that failed earlier), oldest first;
        True when none is left. Merged out of order, an older batch would meet a key a later delete
        had removed, and put its old version back."""
        try:
            merge_pending(self.engine, spec, merge)
        except Exception as exc:  # the merge still fails: keep landing, unmerged, in order
            log.error("marts.merge.failed", table=spec.name, error=f"{type(exc).__name__}: {exc}",
                      hint="later batches land unmerged until it merges (sidecar merge job, `ordertrack marts run`)")
            return False
        return True

    def _dead_letter(self, spec: TableSpec, rejected: list[dict[str, Any]]) -> None:
        """Send the batch's rejects and wait for Kafka's acknowledgement of every one; raise if any
        is missing, so the landing transaction rolls back and the batch is tried again."""
        with self._dlq_lock:  # the worker lands tables in parallel threads; one flush, one outcome
            self._send_dead_letters(spec, rejected)

    def _send_dead_letters(self, spec: TableSpec, rejected: list[dict[str, Any]]) -> None:
        errors: list[str] = []
        refused: list[SecurityError] = []

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(err.str())
                denied = refusal(err, self.settings.kafka, self.config.kafka.dead_letter_topic)
                if denied is not None:
                    refused.append(denied)

        for r in rejected:
            self._dlq.produce(self.config.kafka.dead_letter_topic, key=spec.name.encode(),
                              value=dead_letter_record(spec, r), on_delivery=delivered)
        left = self._dlq.flush(30)
        if left or errors:
            # Nothing half-sent lingers to be sent again beside the retry's own copies.
            self._dlq.purge()
            self._dlq.poll(0)
            if refused:  # a missing grant: waiting would not cure it
                raise refused[0]
            raise ServiceUnavailableError(
                f"The dead-letter topic {self.config.kafka.dead_letter_topic} did not take {len(rejected)} "
                f"rejected message(s) of {spec.name}: {errors[0] if errors else 'no answer from Kafka in 30s'}"
            )


def dead_letter_record(spec: TableSpec, rejected: dict[str, Any]) -> bytes:
    """The dead-letter record of one rejected message; a long value is cut, its size and hash kept."""
    value: str | None = rejected["value"]
    record: dict[str, Any] = {
        "stage": "landing", "table": spec.name, "topic": spec.topic, "partition": rejected["partition"],
        "offset": rejected["offset"], "reason": (rejected["reason"] or "")[:1000], "value": value,
        "detected_at": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    if value is not None and len(value) > DEAD_LETTER_VALUE_CHARS:
        raw = value.encode()
        record.update(value=value[:DEAD_LETTER_VALUE_CHARS], value_truncated=True, value_bytes=len(raw),
                      value_sha256=hashlib.sha256(raw).hexdigest())
    return orjson.dumps(record)


def _is_identifier(name: str) -> bool:
    try:
        validate_identifier(name)
    except ValueError:
        return False
    return True
