"""The pipeline YAML: its models, its validation and its loader.

The shape is the old batch job's (pipeline, source, target, processing, window_settings,
tables) plus a `kafka` section; every field is checked by pydantic and a mistake is reported
as one sentence naming the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ordertrack.errors import ConfigError
from ordertrack.identifiers import validate_identifier
from ordertrack.resources import resource_path

CONFIG_ENV_VAR = "ORDERTRACK_CONFIG"

CdcStrategy = Literal["hybrid", "timestamp_only", "debezium"]
"""`hybrid`: pages by (timestamp, cdc_id_column); `timestamp_only`: the same keyset, but the
cdc_id_column must be the single primary key (the cursor alone is not unique); `debezium`: binlog
CDC through Kafka Connect (`ordertrack connectors apply`), every change including deletes, newest
by binlog position. The first two are the timestamp poller's."""

POLLER_STRATEGIES = ("hybrid", "timestamp_only")

Deletes = Literal["hard", "soft"]
"""What a source delete does to a Debezium table's mart: remove the key, or keep it marked."""

TargetType = Literal["duckdb", "postgres", "redshift"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineInfo(_Strict):
    name: str = Field(description="Pipeline name, used in logs, metrics and the Kafka client ids.")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        return validate_identifier(v, "pipeline name")


class SourceConfig(_Strict):
    type: Literal["mysql"] = "mysql"
    database: str = Field(description="Source schema holding the tables.")

    @field_validator("database")
    @classmethod
    def _db(cls, v: str) -> str:
        return validate_identifier(v, "source database")


class TargetConfig(_Strict):
    type: TargetType = "duckdb"
    raw_schema: str = Field("settlement_public", description="Schema of the raw landing tables.")
    mart_schema: str = Field("settlement_ods", description="Schema of the deduplicated marts.")

    @field_validator("raw_schema", "mart_schema")
    @classmethod
    def _schemas(cls, v: str) -> str:
        return validate_identifier(v, "schema")


class KafkaConfig(_Strict):
    topic_prefix: str = Field("kuaisong", description="Topic of a table is `<prefix>.<table>`.")
    partitions: int = Field(3, ge=1, le=1000, description="Partitions of each table topic.")
    retention_hours: int = Field(168, ge=1, description="Retention of the table topics.")
    watermark_topic: str = Field("ordertrack.watermarks", description="Compacted watermark topic.")
    dead_letter_topic: str = Field("ordertrack.dead_letter", description="Rows that failed validation.")
    transaction_timeout_seconds: int = Field(
        300, ge=10, le=900,
        description="Longest a window's Kafka transaction may stay open; a crashed producer's open "
        "transaction blocks read_committed readers at most this long.",
    )

    @field_validator("topic_prefix", "watermark_topic", "dead_letter_topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v or len(v) > 200 or not all(c.isalnum() or c in "._-" for c in v):
            raise ValueError(f"{v!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-')")
        return v


class ProcessingConfig(_Strict):
    batch_size: int = Field(10000, ge=1, le=1_000_000, description="Default rows per source page.")
    max_parallel_tables: int = Field(3, ge=1, le=64, description="Tables polled at once.")
    query_timeout_seconds: int = Field(300, ge=1, description="Source query timeout.")
    max_clock_drift_seconds: int = Field(
        60, ge=1, description="Refuse to run when the source's clock and ours differ by more."
    )


class WindowSettings(_Strict):
    lookback_minutes: int = Field(120, ge=0, description="Where a table without a watermark starts.")
    buffer_minutes: int = Field(5, ge=0, description="How far behind the source clock a window ends.")
    max_hold_minutes: int = Field(
        30, ge=0,
        description="Longest an open source transaction or replica lag may hold a window's end back; "
        "past it the producer warns and goes on.",
    )
    max_window_rows: int = Field(
        500_000, ge=1, le=50_000_000,
        description="A window holding more rows is published as consecutive sub-windows, each its own "
        "Kafka transaction with its own watermark, so a long catch-up never outlives "
        "kafka.transaction_timeout_seconds. A sub-window ends after a whole cursor second: rows sharing "
        "a cursor value are never split, so one sub-window may hold more when a second holds more.",
    )
    max_window_span_minutes: int = Field(
        60, ge=1, le=7 * 24 * 60,
        description="Longest stretch of cursor time one sub-window covers, counted from its first row "
        "(an empty stretch before it costs nothing); each sub-window takes its own source snapshot.",
    )


class ScheduleConfig(_Strict):
    """When the sidecar's jobs run: cron expressions, evaluated in UTC."""

    retention: str = Field("0 * * * *", description="Raw retention trim (hourly).")
    vacuum: str = Field("0 2 * * *", description="VACUUM of the marts (02:00 UTC).")
    dq: str = Field("0 3 * * *", description="Data-quality checks (03:00 UTC).")
    archive: str = Field("30 * * * *", description="Mart rows past the history cutoff moved to half-year history tables.")
    merge: str = Field("*/10 * * * *", description="Batches that landed unmerged (a failed merge) merged into the marts.")

    @field_validator("retention", "vacuum", "dq", "archive", "merge")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a cron expression (minute hour day month weekday)")
        return v


class RetentionConfig(_Strict):
    raw_hours: int = Field(24, ge=1, description="Raw rows ingested longer ago than this are deleted, once merged.")


class DataQualityConfig(_Strict):
    extraction_window_minutes: int = Field(120, ge=5, description="Length of the extraction reconciliation window.")
    extraction_lag_minutes: int = Field(5, ge=0, description="The window ends this long before now.")
    settle_minutes: int = Field(15, ge=0, description="Rows younger than this are not judged (their other half may be in flight).")
    no_scan_grace_hours: int = Field(24, ge=1, description="An order older than this with no scan event is an exception.")
    max_watermark_age_minutes: int = Field(30, ge=1, description="A watermark further behind now than this is stale.")
    max_lag_messages: int = Field(100_000, ge=1, description="Consumer lag (messages) above this is an exception.")
    max_lag_minutes: float = Field(30, gt=0, description="Consumer lag (age of the oldest unlanded message) above this.")
    sample_keys: int = Field(20, ge=1, le=10_000, description="Keys listed per finding in notes and --json.")


class CdcConfig(_Strict):
    """The Debezium connector that carries the `cdc_strategy: debezium` tables (one per source)."""

    connector: str = Field("ordertrack-cdc", description="Connector name in Kafka Connect.")
    server_id: int = Field(
        5400, ge=1, le=4_294_967_295,
        description="database.server.id: the connector joins the source as a replica under this id; it "
        "must differ from the server's and every other replica's.",
    )
    adapter: Literal["mariadb", "mysql"] = Field(
        "mariadb", description="The source's flavour: MariaDB (Debezium 2.6.2 with its MariaDB adapter) or "
        "MySQL 8.x (Debezium 3.x; not testable on this project's machine).",
    )
    snapshot_mode: Literal["initial", "no_data", "when_needed"] = Field(
        "initial", description="`initial`: copy the tables' rows first (at one binlog position), then stream; "
        "`no_data`: stream only, from the binlog's end (rows written before are never carried: not for "
        "switching a table over); `when_needed`: snapshot again when the stored position is gone.",
    )

    @field_validator("connector")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or len(v) > 100 or not all(c.isalnum() or c in "._-" for c in v):
            raise ValueError(f"{v!r} is not a connector name (letters, digits, '.', '_', '-')")
        return v


class TableConfig(_Strict):
    full_name: str = Field(description="`<database>.<table>` in the source.")
    cdc_strategy: CdcStrategy = "hybrid"
    timestamp_column: str = Field(description="Cursor column, unix seconds.")
    primary_key: tuple[str, ...] = Field(min_length=1, description="Business key of a row.")
    cdc_id_column: str = Field(description="Unique tie-breaker of the keyset pages.")
    target_name: str = Field(description="Raw table in the warehouse.")
    target_schema: str = Field("settlement_public", description="Schema of the raw table.")
    mart_name: str | None = Field(None, description="Mart table; defaults to `mart_<table>`.")
    batch_size: int | None = Field(None, ge=1, le=1_000_000, description="Rows per page.")
    deletes: Deletes = Field(
        "hard", description="Debezium tables: a source delete removes the key from the mart and its history "
        "(`hard`) or keeps the row marked `cdc_op = 'd'` (`soft`).",
    )

    @field_validator("full_name")
    @classmethod
    def _full_name(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) != 2:
            raise ValueError(f"{v!r} must be `<database>.<table>`")
        for p in parts:
            validate_identifier(p, "table name part")
        return v

    @field_validator("timestamp_column", "cdc_id_column", "target_name", "target_schema", "mart_name")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        return None if v is None else validate_identifier(v)

    @field_validator("primary_key")
    @classmethod
    def _pk(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for c in v:
            validate_identifier(c, "primary key column")
        if len(set(v)) != len(v):
            raise ValueError("primary key columns repeat")
        return v

    @model_validator(mode="after")
    def _strategy(self) -> "TableConfig":
        if self.cdc_strategy == "timestamp_only" and self.primary_key != (self.cdc_id_column,):
            raise ValueError("timestamp_only needs cdc_id_column to be the single primary key column")
        return self

    @property
    def database(self) -> str:
        return self.full_name.split(".")[0]

    @property
    def name(self) -> str:
        return self.full_name.split(".")[1]


class PipelineConfig(_Strict):
    pipeline: PipelineInfo
    source: SourceConfig
    target: TargetConfig = TargetConfig()
    kafka: KafkaConfig = KafkaConfig()
    processing: ProcessingConfig = ProcessingConfig()
    window_settings: WindowSettings = WindowSettings()
    schedule: ScheduleConfig = ScheduleConfig()
    retention: RetentionConfig = RetentionConfig()
    dq: DataQualityConfig = DataQualityConfig()
    cdc: CdcConfig = CdcConfig()
    tables: tuple[TableConfig, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _tables_consistent(self) -> "PipelineConfig":
        names = [t.name for t in self.tables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"table(s) listed twice: {', '.join(dupes)}")
        for t in self.tables:
            if t.database != self.source.database:
                raise ValueError(
                    f"table {t.full_name} is not in the source database {self.source.database}"
                )
        return self


def default_config_path() -> Path:
    """`$ORDERTRACK_CONFIG` if set, else the three-table config shipped with the package."""
    env = os.environ.get(CONFIG_ENV_VAR)
    return Path(env) if env else resource_path("pipeline.yaml")


def _location(loc: tuple[object, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_pipeline_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate the pipeline YAML; raise ConfigError naming the file and field."""
    p = Path(path) if path is not None else default_config_path()
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Config file {p} does not exist; pass --config or set {CONFIG_ENV_VAR}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"Config file {p} is not valid YAML{where}.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {p} must hold a mapping with pipeline, source and tables.")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"Config file {p}: field `{_location(tuple(first['loc']))}`: {msg}{tail}."
        ) from None
