"""`marts rebuild`: recompute marts and their history from the raw tables.

`marts run` merges only the batches the ingest ledger lists as unmerged. Raw rows without a batch
id (restored from a snapshot, loaded by hand), or a mart a merge bug (fixed since) left with older
versions than raw holds, need this instead (a row damaged without a change of version is replaced
only by `full`):

* default: every raw version of the table is merged as if it were one batch (the merge files
  after `10_`, unchanged), newer wins, then archival. It inserts the keys the mart lacks and
  replaces rows older than raw's newest version; it never deletes a row whose raw versions
  retention has trimmed (raw keeps days, the mart keeps everything).
* `full`: the mart and every history table of it are emptied and rebuilt from raw alone, then
  split by archival. Refused when raw no longer holds, for some key of the mart or its history,
  that version or a newer one: emptying would lose it (or move it back).

Each call is one warehouse transaction over the named tables (in `MERGE_ORDER`: tracking decides
reactivations before orders); a refusal or a failure anywhere rolls all of it back. A dry run
counts inside a transaction that is always rolled back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from marts import SQL_DIR
from marts.runner import MERGE_ORDER, MartRunner, MartSql
from ordertrack.errors import ConfigError, OrdertrackError
from ordertrack.identifiers import quote_ansi as _q
from ordertrack.log import get_logger
from ordertrack.progress import Progress
from ordertrack.tables import TableRegistry, TableSpec
from ordertrack.warehouse.engine import LEDGER_TABLE, Execute, WarehouseEngine
from ordertrack.warehouse.sqlfiles import render_text, transpile

log = get_logger(__name__)

REBUILD_DIR = SQL_DIR / "rebuild"
RAW_LATEST = REBUILD_DIR / "10_raw_latest.sql"
COUNT_MISSING = REBUILD_DIR / "20_count_missing.sql"
COUNT_NEWER_THAN_MART = REBUILD_DIR / "21_count_newer_than_mart.sql"
COUNT_NEWER_THAN_HISTORY = REBUILD_DIR / "22_count_newer_than_history.sql"
COUNT_MART_NOT_IN_RAW = REBUILD_DIR / "30_count_mart_not_in_raw.sql"
COUNT_HISTORY_NOT_IN_RAW = REBUILD_DIR / "31_count_history_not_in_raw.sql"
EMPTY_MART = REBUILD_DIR / "40_empty_mart.sql"
EMPTY_HISTORY = REBUILD_DIR / "41_empty_history.sql"
DROP_LATEST = SQL_DIR / "merge" / "90_drop_temp.sql"


@dataclass
class Rows:
    """Row counts of a mart and its history tables at one moment."""

    mart: int
    history: dict[str, int] = field(default_factory=dict)

    @property
    def history_total(self) -> int:
        return sum(self.history.values())

    def to_dict(self) -> dict[str, Any]:
        return {"mart_rows": self.mart, "history_rows": self.history, "history_rows_total": self.history_total}


@dataclass
class RebuildReport:
    table: str
    full: bool
    dry_run: bool
    raw_rows: int = 0
    raw_keys: int = 0
    """Distinct keys raw holds: one row each in the rebuilt mart and history (less hard deletes)."""
    keys_missing: int = 0
    """Keys raw holds that neither the mart nor its history holds."""
    newer_than_mart: int = 0
    """Mart rows older than raw's newest version of their key."""
    newer_than_history: int = 0
    """History rows older than raw's newest version of their key (the newer one enters the mart)."""
    not_in_raw: int | None = None
    """--full only: mart and history rows raw no longer holds at that version or newer."""
    before: Rows | None = None
    after: Rows | None = None
    archived: dict[str, int] = field(default_factory=dict)
    batches_marked_merged: int = 0
    """Ledger batches left unmerged (a merge that failed) whose rows the rebuild merged."""

    @property
    def mart_rows_changed(self) -> int:
        return self.keys_missing + self.newer_than_mart + self.newer_than_history

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["before"] = self.before.to_dict() if self.before else None
        out["after"] = self.after.to_dict() if self.after else None
        out["mart_rows_changed"] = self.mart_rows_changed
        return out


class _DryRun(Exception):
    """Carries a dry run's reports out of its transaction, which rolls back on the way."""

    def __init__(self, reports: list[RebuildReport]) -> None:
        super().__init__("dry run")
        self.reports = reports


def rebuild_order(registry: TableRegistry, names: list[str]) -> list[TableSpec]:
    """The named tables in `MERGE_ORDER`, each once; an unknown name is a `ConfigError`."""
    try:
        specs = {registry.get(n).name: registry.get(n) for n in names}
    except KeyError as exc:
        raise ConfigError(f"{exc.args[0]}.") from None
    rank = {name: i for i, name in enumerate(MERGE_ORDER)}
    return sorted(specs.values(), key=lambda s: rank.get(s.name, len(rank)))


def rebuild(engine: WarehouseEngine, registry: TableRegistry, names: list[str], *, full: bool = False,
            dry_run: bool = False, progress: Progress | None = None) -> list[RebuildReport]:
    """Rebuild the marts of `names` (see the module's doc); one report per table, in merge order."""
    specs = rebuild_order(registry, names)
    for spec in specs:
        if not engine.raw_columns(spec):
            raise OrdertrackError(f"Nothing has landed for {spec.name} yet ({spec.raw_schema}.{spec.raw_table} does "
                                  "not exist): there is no raw table to rebuild its mart from.")
    runner = MartRunner(registry, engine.dialect)
    steps = 1 if dry_run else 2  # a dry run counts; a rebuild merges, then archives
    if progress is not None:
        progress.update(total=len(specs) * steps)

    def step(name: str, what: str) -> None:
        if progress is not None:
            progress.advance(1, table=name, step=what)

    def work(execute: Execute) -> list[RebuildReport]:
        if progress is not None:
            progress.update(done=0)  # an engine may run the transaction again after a conflict
        reports = []
        for spec in specs:
            report = RebuildReport(spec.name, full=full, dry_run=dry_run)
            runner.ensure_mart(execute, spec)
            report.before = _rows(execute, runner, spec)
            report.raw_rows = _count(execute, engine.dialect, f"SELECT COUNT(*) FROM {_q(spec.raw_schema)}.{_q(spec.raw_table)}")
            if dry_run:
                execute(_sql(runner, execute, spec).render(RAW_LATEST), {})
                _inspect(execute, runner, spec, report)
                execute(_sql(runner, execute, spec).render(DROP_LATEST), {})
                step(spec.name, "counted")
            else:
                def before_apply(execute: Execute, spec: TableSpec = spec, report: RebuildReport = report) -> None:
                    _inspect(execute, runner, spec, report)
                    if full:
                        _empty(execute, runner, spec)

                runner.merge_batch(execute, spec, None, latest=RAW_LATEST, before_apply=before_apply)
                step(spec.name, "merged")
                report.archived = runner.archive(execute, spec)
                report.after = _rows(execute, runner, spec)
                # Every raw row is merged now, those of batches a failed merge left too: so say
                # (`status`, and raw retention, which keeps unmerged batches).
                ledger = {"__ledger__": (engine.raw_schema, LEDGER_TABLE)}
                unmerged = "FROM __ledger__ WHERE topic = :topic AND merged_at IS NULL"
                report.batches_marked_merged = int(execute(render_text(
                    f"SELECT COUNT(DISTINCT batch_id) {unmerged}", engine.dialect, ledger), {"topic": spec.topic})[0][0])
                execute(render_text("UPDATE __ledger__ SET merged_at = GETDATE() WHERE topic = :topic "
                                    "AND merged_at IS NULL", engine.dialect, ledger), {"topic": spec.topic})
                step(spec.name, "archived")
                log.info("marts.rebuilt", table=spec.name, full=full, raw_keys=report.raw_keys,
                         keys_missing=report.keys_missing, newer_than_mart=report.newer_than_mart,
                         newer_than_history=report.newer_than_history, mart_rows_before=report.before.mart,
                         mart_rows_after=report.after.mart, history_rows_before=report.before.history_total,
                         history_rows_after=report.after.history_total)
            reports.append(report)
        if dry_run:
            raise _DryRun(reports)  # roll back even the marts `ensure_mart` may have created
        return reports

    try:
        return engine.in_transaction(work)
    except _DryRun as done:
        return done.reports


def _inspect(execute: Execute, runner: MartRunner, spec: TableSpec, report: RebuildReport) -> None:
    """With `batch_latest` built: what the merge will change; for --full, refuse if raw lost keys."""
    sql = _sql(runner, execute, spec)
    report.raw_keys = _count(execute, runner.dialect, "SELECT COUNT(*) FROM batch_latest")
    report.keys_missing = execute(sql.render(COUNT_MISSING), {})[0][0]
    report.newer_than_mart = execute(sql.render(COUNT_NEWER_THAN_MART), {})[0][0]
    report.newer_than_history = execute(sql.render(COUNT_NEWER_THAN_HISTORY), {})[0][0]
    if not report.full:
        return
    report.not_in_raw = (execute(sql.render(COUNT_MART_NOT_IN_RAW), {})[0][0]
                         + execute(sql.render(COUNT_HISTORY_NOT_IN_RAW), {})[0][0])
    if report.not_in_raw:
        raise ConfigError(
            f"A full rebuild of {spec.name} would lose {report.not_in_raw} keys of its mart and history that raw no "
            "longer holds at their version (trimmed by retention): restore raw first with `ordertrack replay` from "
            "Kafka or `ordertrack backfill` from the source, or rebuild without --full (it never deletes).")


def _empty(execute: Execute, runner: MartRunner, spec: TableSpec) -> None:
    sql = _sql(runner, execute, spec)
    execute(sql.render(EMPTY_MART), {})
    for hist in sql.history:
        execute(sql.render(EMPTY_HISTORY, hist=hist), {})


def _sql(runner: MartRunner, execute: Execute, spec: TableSpec) -> MartSql:
    return MartSql(spec, runner.registry, runner.dialect, runner.history_tables(execute, spec))


def _rows(execute: Execute, runner: MartRunner, spec: TableSpec) -> Rows:
    def count(table: str) -> int:
        return _count(execute, runner.dialect, f"SELECT COUNT(*) FROM {_q(spec.mart_schema)}.{_q(table)}")

    return Rows(count(spec.mart_table), {h: count(h) for h in runner.history_tables(execute, spec)})


def mart_rows(engine: WarehouseEngine, registry: TableRegistry) -> dict[str, Rows | None]:
    """Each table's mart and history row counts, read in one transaction; None for a mart that
    does not exist yet (nothing merged). Creates nothing."""
    runner = MartRunner(registry, engine.dialect)
    exists = ("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :schema AND table_name = :name")

    def work(execute: Execute) -> dict[str, Rows | None]:
        out: dict[str, Rows | None] = {}
        for spec in registry:
            found = execute(transpile(exists, engine.dialect), {"schema": spec.mart_schema, "name": spec.mart_table})
            out[spec.name] = _rows(execute, runner, spec) if int(found[0][0]) else None
        return out

    return engine.in_transaction(work)


def _count(execute: Execute, dialect: str, sql: str) -> int:
    """Inline counts are written in the source dialect, like the files (identifiers come quoted
    from the config, validated, or from the catalog)."""
    return int(execute(transpile(sql, dialect), {})[0][0])


def rebuild_files() -> list[Path]:
    """The rebuild's own SQL files (`marts sql` prints them beside the merge files)."""
    return sorted(REBUILD_DIR.glob("*.sql"))
