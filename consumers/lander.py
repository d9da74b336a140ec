"""Landing one batch of one table: schema first, then one warehouse transaction, then dead letters.

Steps of `land`:
1. stage the messages (Arrow, values still JSON);
2. if the batch carries keys the raw table lacks, add those columns (types from the source
   catalog) before landing, so a column added in the source arrives without a restart;
3. `engine.land`: raw rows + ledger + exceptions, one transaction, offsets already landed skipped;
4. send the rejected messages to the dead-letter topic (they are already in the exceptions table).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import orjson
from confluent_kafka import Producer

from ordertrack.config import PipelineConfig
from ordertrack.log import get_logger
from ordertrack.settings import Settings
from ordertrack.source.columns import source_columns
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import AfterLanding, LandResult, WarehouseEngine
from ordertrack.warehouse.types import Column, warehouse_type
from consumers import metrics
from consumers.staging import RawMessage, stage

log = get_logger(__name__)


class Lander:
    def __init__(self, engine: WarehouseEngine, config: PipelineConfig, settings: Settings,
                 after_landing: AfterLanding | None = None) -> None:
        self.engine = engine
        self.after_landing = after_landing  # the mart merge, wired in by the CLI
        self.config = config
        self.settings = settings
        self._dlq = Producer({
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "client.id": f"{config.pipeline.name}.landing.dlq",
            "enable.idempotence": True,
            "log_level": 3,
        })

    def ensure_table(self, spec: TableSpec) -> list[str]:
        """Create or widen the raw table from the source catalog."""
        cols = [Column(c.name, warehouse_type(c)) for c in source_columns(self.settings.mysql, spec)]
        added = self.engine.ensure_raw_table(spec, cols)
        if added:
            log.info("landing.columns.added", table=spec.raw_table, columns=added)
        return added

    def land(self, spec: TableSpec, messages: Sequence[RawMessage]) -> LandResult:
        if not messages:
            return LandResult()
        staged = stage(messages)
        unknown = self.engine.unknown_keys(spec, staged)
        added: list[str] = []
        if unknown:
            added = self.ensure_table(spec)
            still = unknown - set(self.engine.raw_columns(spec))
            if still:
                # Keys the source catalog does not know (dropped since?): kept as text, never lost.
                added += self.engine.ensure_raw_table(spec, [Column(k, "VARCHAR(65535)") for k in sorted(still)])
                log.warning("landing.columns.not_in_source", table=spec.name, columns=sorted(still))
        result = self.engine.land(spec, spec.topic, staged, after=self.after_landing)
        result.skipped += len(messages) - staged.num_rows  # repeats inside the batch
        result.added_columns = added
        if result.rejected:
            self._dead_letter(spec, result)
        metrics.ROWS_LANDED.labels(spec.name).inc(result.landed)
        metrics.ROWS_REJECTED.labels(spec.name).inc(len(result.rejected))
        return result

    def _dead_letter(self, spec: TableSpec, result: LandResult) -> None:
        for r in result.rejected:
            log.warning("landing.rejected", table=spec.name, partition=r["partition"], offset=r["offset"], reason=r["reason"])
            self._dlq.produce(
                self.config.kafka.dead_letter_topic,
                key=spec.name.encode(),
                value=orjson.dumps({
                    "stage": "landing", "table": spec.name, "topic": spec.topic, "partition": r["partition"],
                    "offset": r["offset"], "reason": r["reason"], "value": r["value"],
                    "detected_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                }),
            )
        self._dlq.flush(30)
