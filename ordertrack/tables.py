"""The table registry: one `TableSpec` per configured source table, with every derived name.

Stages ask the registry for topic, raw and mart names instead of building them, so a name is
decided in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from ordertrack.config import POLLER_STRATEGIES, CdcStrategy, Deletes, PipelineConfig, TableConfig


@dataclass(frozen=True)
class TableSpec:
    """A source table and where its rows go."""

    name: str
    database: str
    cursor_column: str
    key_columns: tuple[str, ...]
    id_column: str
    topic: str
    raw_schema: str
    raw_table: str
    mart_schema: str
    mart_table: str
    batch_size: int
    strategy: CdcStrategy = "hybrid"
    deletes: Deletes = "hard"

    @property
    def binlog(self) -> bool:
        """Carried by Debezium's binlog CDC (change envelopes), not by the timestamp poller."""
        return self.strategy == "debezium"

    @property
    def source_full_name(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def page_order(self) -> tuple[str, str] | tuple[str]:
        """Keyset columns of a page: the cursor, then the unique tie-breaker."""
        if self.id_column == self.cursor_column:
            return (self.cursor_column,)
        return (self.cursor_column, self.id_column)


class TableRegistry:
    """Lookup of `TableSpec`s by source table name, in config order."""

    def __init__(self, config: PipelineConfig) -> None:
        self._specs: dict[str, TableSpec] = {}
        for t in config.tables:
            self._specs[t.name] = _spec(config, t)

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, name: str) -> TableSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(self._specs)
            raise KeyError(f"unknown table {name!r}; configured tables: {known}") from None

    def polled(self) -> list[TableSpec]:
        """The tables the timestamp poller carries."""
        return [s for s in self if not s.binlog]

    def binlog(self) -> list[TableSpec]:
        """The tables Debezium carries."""
        return [s for s in self if s.binlog]

    def select(self, names: list[str] | None) -> list[TableSpec]:
        """The named tables (all of them when `names` is empty), in config order."""
        if not names:
            return list(self)
        wanted = [self.get(n).name for n in names]
        return [s for s in self if s.name in wanted]


def _spec(config: PipelineConfig, t: TableConfig) -> TableSpec:
    return TableSpec(
        name=t.name,
        database=t.database,
        cursor_column=t.timestamp_column,
        key_columns=t.primary_key,
        id_column=t.cdc_id_column,
        # A Debezium table has its own topic: its messages are change envelopes, not rows, and a
        # table switched between the two never mixes them in one log.
        topic=(f"{cdc_topic_prefix(config)}.{t.name}" if t.cdc_strategy not in POLLER_STRATEGIES
               else f"{config.kafka.topic_prefix}.{t.name}"),
        raw_schema=t.target_schema,
        raw_table=t.target_name,
        mart_schema=config.target.mart_schema,
        mart_table=t.mart_name or f"mart_{t.name}",
        batch_size=t.batch_size or config.processing.batch_size,
        strategy=t.cdc_strategy,
        deletes=t.deletes,
    )


def cdc_topic_prefix(config: PipelineConfig) -> str:
    """Debezium's `topic.prefix`: its table topics are `<kafka.topic_prefix>.cdc.<table>`."""
    return f"{config.kafka.topic_prefix}.cdc"
