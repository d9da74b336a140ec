"""The contract every warehouse engine keeps.

A landing is one warehouse transaction: the batch's rows appended to the raw table, its offset
ranges recorded in the ingest ledger, (later) the marts merged. Only after it commits may a
consumer commit offsets to Kafka; on assignment it seeks to `next_offsets`, so the ledger, not
the consumer group, decides what has landed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import pyarrow as pa

from ordertrack.tables import TableSpec
from ordertrack.warehouse.types import Column

LEDGER_TABLE = "ordertrack_ingest_ledger"
EXCEPTIONS_TABLE = "order_tracking_exceptions"
JOB_RUNS_TABLE = "ordertrack_job_runs"
"""One row per scheduled job run (raw schema, beside the ledger): start, end, status, figures."""
META_COLUMNS = (
    Column("_kafka_topic", "VARCHAR(255)"),
    Column("_kafka_partition", "INTEGER"),
    Column("_kafka_offset", "BIGINT"),
    Column("_window_id", "VARCHAR(128)"),
    Column("_ingested_at", "TIMESTAMP"),
    Column("_batch_id", "VARCHAR(32)"),
)

STAGED_SCHEMA = pa.schema([
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("window_id", pa.string()),
    ("value", pa.binary()),
    ("reject_reason", pa.string()),
])
"""A staged batch: one row per distinct Kafka message, the value still raw bytes (UTF-8 JSON,
checked and parsed by the engine); `reject_reason` is set when staging already found the
message unusable (an empty value)."""


Execute = Callable[[str, dict[str, Any]], list[tuple]]
"""Runs one statement with named parameters inside an open transaction; returns its rows."""


class Session(Protocol):
    """An open transaction of one engine: runs statements already rendered for its dialect, with
    `:name` parameters bound its own way, and loads a typed batch into a temporary table."""

    def __call__(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        """Run one statement; return its rows (none for a statement that returns none)."""

    def stage(self, name: str, rows: pa.Table, types: dict[str, str]) -> None:
        """Make `rows` readable as relation `name` for the rest of the transaction, with their
        columns (warehouse types `types`): the Arrow table itself, read in place (DuckDB), a
        temporary table loaded by COPY FROM STDIN (PostgreSQL) or Parquet on S3 + COPY (Redshift)."""

    def unstage(self, name: str) -> None:
        """Drop what `stage` made under `name`."""

    def lock(self, name: str) -> None:
        """Hold an exclusive lock named `name` until the transaction ends, so two writers of the
        same thing (two landers of one topic, two sidecars starting a job) take turns. Engines
        whose transactions already serialize them (DuckDB: one writing process; Redshift:
        serializable isolation, the loser redone) need do nothing."""

AfterLanding = Callable[[Execute, TableSpec, str], None]
"""Called inside the landing transaction with the batch id, after the raw rows and the ledger
(the mart merge); if it raises, the engine raises `MergeFailed` with nothing committed."""

BeforeCommit = Callable[[list[dict[str, Any]]], None]
"""Called with the batch's rejected messages ({partition, offset, reason, value}) just before the
landing transaction commits: the dead letters are sent there, so a batch whose dead letters could
not be sent does not commit, and its exceptions rows never exist without their dead letters."""

T = TypeVar("T")


class MergeFailed(Exception):
    """Raised by a landing when its `after` hook (the mart merge) failed, after rolling the whole
    batch back (`__cause__` says why). The `Lander` then lands the batch again without the hook,
    marked unmerged, so a merge bug never stops landing."""


Misfits = Literal["reject", "raise"]
"""What `land` does with values a raw column cannot take as they are: reject them to the dead
letters, or roll back and raise `MisfitColumns` (so the caller can widen the columns first)."""


class MisfitColumns(Exception):
    """Raised by `land(misfits="raise")`, with nothing committed: some values of these raw columns
    would not convert, be rounded or cut, or exceed a warehouse VARCHAR."""

    def __init__(self, columns: set[str]) -> None:
        super().__init__(f"values that do not fit raw columns {', '.join(sorted(columns))}")
        self.columns = columns


@dataclass
class LandResult:
    landed: int = 0
    skipped: int = 0  # already in the ledger (a redelivery)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {partition, offset, reason, value}
    added_columns: list[str] = field(default_factory=list)
    batch_id: str | None = None
    merged: bool = False
    merge_error: str | None = None
    deletes: int = 0  # of `landed`: source deletes (binlog CDC tables)


class WarehouseEngine(Protocol):
    """What an engine implements; everything else (landing, the ledger's reads, the marts) is
    shared SQL rendered for `dialect` (`ordertrack.warehouse.landing`, `marts/`). A new engine is
    one module: a class with these members, usually inheriting `landing.SharedSql` for the
    ledger reads and `land`."""

    dialect: str
    """sqlglot dialect name of the SQL this engine runs."""
    placeholder: str
    """The positional parameter marker of `query` (`?` or `%s`)."""
    raw_schema: str
    """Schema of the raw tables, the ingest ledger, the replays and the job runs."""
    mart_schema: str
    """Schema of the marts, their history tables and the exceptions."""
    alters_types_in_transaction: bool
    """Whether ALTER COLUMN ... TYPE may run inside a transaction (not on Redshift)."""

    def ensure_raw_table(self, spec: TableSpec, columns: list[Column]) -> list[str]:
        """Create the raw table or add the columns it lacks; return the names added. Called when a
        batch carries a column the table does not have yet, and at worker start."""

    def raw_columns(self, spec: TableSpec) -> dict[str, str]:
        """Column name -> full type of the raw table (DECIMAL(p,s), VARCHAR(n) where the engine keeps
        them); empty when it does not exist."""

    def in_transaction(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` with a session inside one transaction; commit if it returns, roll back if it
        raises. An engine may run `fn` again after a transient conflict (`retryable`)."""

    def retryable(self, exc: BaseException) -> bool:
        """Whether `exc` is the engine's transient conflict (a lock, a serialization failure),
        worth redoing the whole transaction for rather than blaming the statement."""

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """Run a read-only statement (CLI, checks, tests) with positional `placeholder` parameters."""

    def vacuum(self, specs: list[TableSpec]) -> list[str]:
        """Reclaim the space of deleted mart rows and restore sort order, outside any transaction;
        return the statements run."""

    def close(self) -> None:
        """Release the connection."""

    # -- shared (`landing.SharedSql`) ------------------------------------------------------------
    def land(self, spec: TableSpec, topic: str, staged: pa.Table, after: AfterLanding | None = None,
             before_commit: BeforeCommit | None = None, misfits: Misfits = "reject",
             expected: dict[int, int] | None = None) -> LandResult:
        """`landing.land_batch` on this engine."""

    def next_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> where landing resumes: the first offset not landed yet, or the next offset
        to re-land of a replay's open hole (`ordertrack.warehouse.positions`); read on partition
        assignment."""

    def unmerged_batches(self, topic: str) -> list[str]:
        """Batch ids landed but not merged, oldest first."""

    def mark_merged(self, execute: Session, batch_id: str) -> None:
        """Inside a transaction: record that `batch_id` was merged."""
