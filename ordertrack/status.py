"""`ordertrack status`: every table, service and sidecar job in one report (the old grid view).

Everything comes from what the pipeline already records: the watermark topic (what was
published), the consumer lag (what is not landed yet), the ingest ledger (what landed and was
merged), the exceptions table, and the sidecar's job runs. Readers outside the warehouse reach
this module through `StatusInputs`, wired by the CLI, so it imports no stage (as `quality.runner`).

Each section is read on its own. A service that does not answer makes the sections that need it
`unavailable` without asking it again (no pile of timeouts), and the rest is still reported;
the exit code then says 4 rather than claiming a verdict nobody could check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal, Protocol, TypeVar

from ordertrack.config import DataQualityConfig
from ordertrack.errors import ConfigError, OrdertrackError, ServiceUnavailableError, as_service_error, service_lost
from ordertrack.freshness import TableFreshness, judge
from ordertrack.identifiers import quote_ansi as q
from ordertrack.log import get_logger
from ordertrack.preflight.findings import Finding
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc
from ordertrack.warehouse.engine import EXCEPTIONS_TABLE, LEDGER_TABLE, WarehouseEngine
from ordertrack.watermarks.model import Watermark

log = get_logger(__name__)

T = TypeVar("T")

Service = Literal["source", "kafka", "warehouse"]
SERVICES: tuple[Service, ...] = ("source", "kafka", "warehouse")
SERVICE_NAMES: dict[Service, str] = {"source": "The source database", "kafka": "Kafka", "warehouse": "The warehouse"}

Section = Literal["watermarks", "history", "lag", "ledger", "exceptions", "jobs", "connector", "running"]
NEEDS: dict[Section, tuple[Service, ...]] = {
    "watermarks": ("kafka",),
    "history": ("kafka",),
    # The lag is Kafka's end offsets minus the ledger's next offsets: it needs both.
    "lag": ("kafka", "warehouse"),
    "ledger": ("warehouse",),
    "exceptions": ("warehouse",),
    "jobs": ("warehouse",),
    "connector": (),  # Kafka Connect, which is not one of the three services told here
    # Backfill runs are read from the watermark topic, replays from the warehouse.
    "running": ("kafka", "warehouse"),
}
"""Which services a section reads; a section whose service is down is not attempted."""

Verdict = Literal["fresh", "stale", "unknown"]
"""fresh: every limit checked and kept; stale: a limit is breached (or the connector is down);
unknown: nothing breached, but something could not be checked."""

EXIT_FRESH = 0
EXIT_STALE = 1
EXIT_UNREACHABLE = ServiceUnavailableError.exit_code

PUBLISHED_WINDOW_SECONDS = 3600


# -- the model ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceStatus:
    service: Service
    where: str
    """Its address, without user or password."""
    reachable: bool
    error: str | None = None
    """One sentence when it is not reachable."""
    problems: tuple[str, ...] = ()
    """What `config check` finds wrong besides reachability (a missing topic, a grant)."""
    note: str | None = None


@dataclass(frozen=True)
class RunningWork:
    """A backfill or replay in progress on a table. The commands that run them report here:
    `StatusInputs.running` returns them by table, one entry each."""

    kind: str
    """`backfill`, `replay`, ..."""
    detail: str
    """One line: the period, who runs it, how far it got."""
    since: float | None = None
    """Unix seconds it started, when known."""


@dataclass(frozen=True)
class LastWindow:
    """The table's live watermark record: the last window published (or the operator's move)."""

    status: str
    window_id: str | None
    start: int | None
    end: int
    rows: int
    dead_lettered: int
    written_at: float
    hold_seconds: int
    hold_reason: str | None

    @classmethod
    def of(cls, wm: Watermark) -> "LastWindow":
        return cls(wm.status, wm.window_id, wm.window_start, wm.position, wm.row_count, wm.dead_lettered,
                   wm.written_at, wm.hold_seconds, wm.hold_reason)


@dataclass(frozen=True)
class LedgerState:
    last_landed_at: float | None
    """Unix seconds of the newest batch landed (None: nothing landed)."""
    last_merged_at: float | None
    unmerged_batches: int


@dataclass(frozen=True)
class Freshness:
    verdict: Verdict
    problems: tuple[str, ...] = ()
    """Each breached limit, in `freshness.judge`'s words."""
    unchecked: tuple[str, ...] = ()
    """What could not be checked, and why."""
    connector: str | None = None
    """Binlog CDC tables: `running`, `not checked ...`, or why the connector carries nothing."""


@dataclass
class TableStatus:
    table: str
    binlog: bool
    watermark: int | None
    """Live watermark position (unix seconds); None for binlog CDC, none yet, or unavailable."""
    watermark_age_minutes: float | None
    last_window: LastWindow | None
    published_last_hour: int | None
    lag_messages: int | None
    lag_minutes: float | None
    ledger: LedgerState | None
    open_exceptions: dict[str, int] | None
    """Exception type -> open count."""
    freshness: Freshness
    running: list[RunningWork] = field(default_factory=list)


@dataclass(frozen=True)
class JobStatus:
    """The newest recorded run of one sidecar job (all None: it never ran)."""

    job: str
    status: str | None = None
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    figures: dict[str, Any] | None = None


@dataclass
class StatusReport:
    generated_at: float
    limits: DataQualityConfig
    tables: list[TableStatus]
    services: list[ServiceStatus]
    jobs: list[JobStatus] | None
    unavailable: dict[Section, str] = field(default_factory=dict)
    """Section -> why it could not be read; its fields are None in every table."""
    other_exceptions: dict[str, int] = field(default_factory=dict)
    """Open exceptions of no configured table ("<source_table>: <type>" -> count)."""
    service_errors: list[str] = field(default_factory=list)
    """Service errors met while reading that did not mark a service down (a missing topic, a
    DuckDB file a worker held past the wait): status could not be told, so still exit 4."""

    @property
    def unreachable(self) -> list[str]:
        """The one-sentence reasons services could not be used, first the probes' then the reads'."""
        return [s.error or f"{SERVICE_NAMES[s.service]} did not answer." for s in self.services
                if not s.reachable] + self.service_errors

    @property
    def exit_code(self) -> int:
        # A service that is away comes first: a verdict made without it is not worth trusting.
        if self.unreachable:
            return EXIT_UNREACHABLE
        if any(t.freshness.verdict != "fresh" for t in self.tables):
            return EXIT_STALE
        return EXIT_FRESH

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated_at_utc": format_utc(self.generated_at),
            "exit_code": self.exit_code,
            "fresh": all(t.freshness.verdict == "fresh" for t in self.tables),
            "limits": {"max_watermark_age_minutes": self.limits.max_watermark_age_minutes,
                       "max_lag_messages": self.limits.max_lag_messages,
                       "max_lag_minutes": self.limits.max_lag_minutes},
            "tables": [_table_dict(t) for t in self.tables],
            "services": [_service_dict(s) for s in self.services],
            "scheduler": {"jobs": None if self.jobs is None else [_job_dict(j) for j in self.jobs]},
            "unavailable": dict(self.unavailable),
            "other_open_exceptions": dict(self.other_exceptions),
            "service_errors": list(self.service_errors),
        }


def _table_dict(t: TableStatus) -> dict[str, Any]:
    w, led = t.last_window, t.ledger
    return {
        "table": t.table,
        "source": "binlog CDC" if t.binlog else "poller",
        "watermark": None if t.watermark is None else {
            "position": t.watermark, "position_utc": format_utc(t.watermark), "age_minutes": t.watermark_age_minutes},
        "last_window": None if w is None else {
            "status": w.status, "window_id": w.window_id, "start_utc": format_utc(w.start), "end_utc": format_utc(w.end),
            "rows": w.rows, "dead_lettered": w.dead_lettered, "written_at_utc": format_utc(w.written_at),
            "hold_seconds": w.hold_seconds, "hold_reason": w.hold_reason},
        "published_last_hour": t.published_last_hour,
        "lag": None if t.lag_messages is None else {"messages": t.lag_messages, "minutes": t.lag_minutes},
        "ledger": None if led is None else {
            "last_landed_at_utc": format_utc(led.last_landed_at), "last_merged_at_utc": format_utc(led.last_merged_at),
            "unmerged_batches": led.unmerged_batches},
        "open_exceptions": t.open_exceptions,
        "freshness": {"verdict": t.freshness.verdict, "problems": list(t.freshness.problems),
                      "unchecked": list(t.freshness.unchecked), "connector": t.freshness.connector},
        "running": [{"kind": r.kind, "detail": r.detail, "since_utc": format_utc(r.since)} for r in t.running],
    }


def _service_dict(s: ServiceStatus) -> dict[str, Any]:
    return {"service": s.service, "where": s.where, "reachable": s.reachable, "error": s.error,
            "problems": list(s.problems), "note": s.note}


def _job_dict(j: JobStatus) -> dict[str, Any]:
    stamp = lambda d: None if d is None else format_utc(d.timestamp())  # noqa: E731
    return {"job": j.job, "status": j.status, "scheduled_for_utc": stamp(j.scheduled_for),
            "started_at_utc": stamp(j.started_at), "finished_at_utc": stamp(j.finished_at), "error": j.error,
            "figures": j.figures}


# -- pure parts -----------------------------------------------------------------------------------

def services_from_findings(findings: Iterable[Finding], where: dict[Service, str]) -> list[ServiceStatus]:
    """One status per service from `config check`'s findings: a service is unreachable when it did
    not answer or refused the connection itself (a refused login or an unreadable DuckDB file are
    `<service>.connect` errors); every other finding is a problem told beside it."""
    out = []
    for service in SERVICES:
        mine = [f for f in findings if f.service == service]
        down = next((f for f in mine if f.severity == "error" and (f.unreachable or f.check == f"{service}.connect")),
                    None)
        problems = tuple(f"{f.severity}: {f.message}" for f in mine if f is not down)
        out.append(ServiceStatus(service, where[service], down is None, down.message if down else None, problems))
    return out


def published_since(history: Sequence[Watermark], table: str, since: float) -> int:
    """Rows the table's live windows published since `since` (operator moves carry no rows)."""
    return sum(w.row_count for w in history if w.table == table and w.live and w.written_at >= since)


class _PartitionLag(Protocol):
    table: str
    lag_messages: int
    lag_minutes: float


def lag_by_table(partitions: Iterable[_PartitionLag]) -> dict[str, tuple[int, float]]:
    """Table -> (messages not landed over its partitions, minutes of the oldest), as `dq` judges it."""
    out: dict[str, tuple[int, float]] = {}
    for p in partitions:
        messages, minutes = out.get(p.table, (0, 0.0))
        out[p.table] = (messages + p.lag_messages, max(minutes, p.lag_minutes))
    return out


@dataclass
class Readings:
    """What the sections returned; None where a section is unavailable (`unavailable` says why)."""

    latest: dict[str, Watermark] | None = None
    history: list[Watermark] | None = None
    lag: dict[str, tuple[int, float]] | None = None
    ledger: dict[str, LedgerState] | None = None
    exceptions: dict[str | None, dict[str, int]] | None = None
    """source_table -> exception type -> open count."""
    connector: str | None = None
    """For binlog CDC tables: `running`, `not checked ...`, or why the connector is down."""
    running: dict[str, list[RunningWork]] = field(default_factory=dict)
    unavailable: dict[Section, str] = field(default_factory=dict)


def freshness_of(spec: TableSpec, judged: TableFreshness, got: Readings) -> Freshness:
    """The verdict on one table: `judge`'s findings for what could be read, `unknown` for what not.
    `judge` would call a table without a watermark stale, so its watermark finding counts only
    when the watermarks were read."""
    problems: list[str] = []
    unchecked: list[str] = []
    if not spec.binlog:
        if got.latest is None:
            unchecked.append(f"watermark: {got.unavailable.get('watermarks', 'not read')}")
        elif judged.stale_watermark:
            problems.append(judged.stale_watermark)
    if got.lag is None:
        unchecked.append(f"lag: {got.unavailable.get('lag', 'not read')}")
    elif judged.lagging:
        problems.append(judged.lagging)
    connector = None
    if spec.binlog:
        connector = got.connector or "not checked"
        if connector.startswith("not checked"):
            unchecked.append(f"connector {connector}")
        elif connector != "running":
            problems.append(connector)
    verdict: Verdict = "stale" if problems else "unknown" if unchecked else "fresh"
    return Freshness(verdict, tuple(problems), tuple(unchecked), connector)


def build_tables(specs: Sequence[TableSpec], now: float, cfg: DataQualityConfig, got: Readings) -> list[TableStatus]:
    """One status per table from the readings; pure."""
    binlog = frozenset(s.name for s in specs if s.binlog)
    c = got.connector
    down = None if c is None or c == "running" or c.startswith("not checked") else c
    judged = {f.table: f for f in judge([s.name for s in specs], now, got.latest or {}, got.lag or {}, cfg,
                                        binlog=binlog, connector_down=down)}
    out = []
    for spec in specs:
        wm = None if spec.binlog or got.latest is None else got.latest.get(spec.name)
        lag = None if got.lag is None else got.lag.get(spec.name, (0, 0.0))
        exceptions = None if got.exceptions is None else dict(sorted(got.exceptions.get(spec.name, {}).items()))
        out.append(TableStatus(
            table=spec.name, binlog=spec.binlog,
            watermark=wm.position if wm else None,
            watermark_age_minutes=judged[spec.name].watermark_age_minutes if wm else None,
            last_window=LastWindow.of(wm) if wm else None,
            published_last_hour=(None if spec.binlog or got.history is None
                                 else published_since(got.history, spec.name, now - PUBLISHED_WINDOW_SECONDS)),
            lag_messages=None if lag is None else lag[0],
            lag_minutes=None if lag is None else lag[1],
            ledger=None if got.ledger is None else got.ledger.get(spec.name, LedgerState(None, None, 0)),
            open_exceptions=exceptions,
            freshness=freshness_of(spec, judged[spec.name], got),
            running=list(got.running.get(spec.name, [])),
        ))
    return out


def other_exceptions(exceptions: dict[str | None, dict[str, int]] | None, tables: Iterable[str]) -> dict[str, int]:
    """Open exceptions whose source_table is none of the configured tables (kept, not dropped)."""
    known = set(tables)
    return {f"{source or '(no table)'}: {kind}": n for source, kinds in (exceptions or {}).items()
            if source not in known for kind, n in sorted(kinds.items())}


# -- warehouse reads ------------------------------------------------------------------------------

def _unix(ts: datetime | None) -> float | None:
    # Warehouse TIMESTAMP columns hold UTC without a zone (`timeparse.utc_naive`).
    if ts is None:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()


def read_ledger(engine: WarehouseEngine, specs: Sequence[TableSpec]) -> dict[str, LedgerState]:
    ledger = f"{q(engine.raw_schema)}.{q(LEDGER_TABLE)}"
    out = {}
    for spec in specs:
        ((landed, merged, unmerged),) = engine.query(
            f"SELECT MAX(landed_at), MAX(merged_at), COUNT(DISTINCT CASE WHEN merged_at IS NULL THEN batch_id END) "
            f"FROM {ledger} WHERE topic = {engine.placeholder}", [spec.topic])
        out[spec.name] = LedgerState(_unix(landed), _unix(merged), int(unmerged or 0))
    return out


def read_open_exceptions(engine: WarehouseEngine) -> dict[str | None, dict[str, int]]:
    rows = engine.query(
        f"SELECT source_table, exception_type, COUNT(*) FROM {q(engine.mart_schema)}.{q(EXCEPTIONS_TABLE)} "
        "WHERE resolved_at IS NULL GROUP BY source_table, exception_type")
    out: dict[str | None, dict[str, int]] = {}
    for source, kind, n in rows:
        out.setdefault(source, {})[kind] = int(n)
    return out


def read_jobs(engine: WarehouseEngine, jobs: Sequence[str]) -> list[JobStatus]:
    """The newest run of each job; one query per job, so a job that runs weekly is not pushed out
    of view by one that runs every ten minutes."""
    from ordertrack.warehouse.job_runs import RunStore

    store = RunStore(engine)
    out = []
    for job in jobs:
        runs = store.recent(1, job)
        if not runs:
            out.append(JobStatus(job))
            continue
        r = runs[0]
        out.append(JobStatus(job, r.status, r.scheduled_for, r.started_at, r.finished_at, r.error, r.figures))
    return out


# -- gathering ------------------------------------------------------------------------------------

@dataclass
class StatusInputs:
    """What status reads outside the warehouse's own tables; the CLI wires them."""

    services: Callable[[], list[ServiceStatus]]
    """Probe each service (`config check`'s probes)."""
    latest_watermarks: Callable[[], dict[str, Watermark]]
    watermark_history: Callable[[float], list[Watermark]]
    """Committed watermark records written since a unix time."""
    warehouse: Callable[[], WarehouseEngine | None]
    """Open the warehouse; None when it is configured but does not exist yet (nothing landed)."""
    lag: Callable[[WarehouseEngine | None], dict[str, tuple[int, float]]]
    """Table -> (messages not landed, minutes of the oldest), against this warehouse's ledger."""
    connector_down: Callable[[], str | None] | None = None
    """Why the Debezium connector carries nothing, or None when it runs; unset: not checked."""
    running: Callable[[WarehouseEngine | None], dict[str, list[RunningWork]]] = lambda engine: {}
    """Backfills and replays in progress, by table (replays from this warehouse)."""


class _Sections:
    """Runs each section once, skipping those whose service is down and turning a failure into
    the one sentence the report shows for it."""

    def __init__(self, services: list[ServiceStatus], raise_bugs: bool) -> None:
        self.services = {s.service: s for s in services}
        self.raise_bugs = raise_bugs
        self.unavailable: dict[Section, str] = {}
        self.service_errors: list[str] = []

    def down(self, service: Service, reason: str) -> None:
        if self.services[service].reachable:
            self.services[service] = replace(self.services[service], reachable=False, error=reason)

    def read(self, section: Section, fn: Callable[[], T]) -> T | None:
        away = [s for s in NEEDS[section] if not self.services[s].reachable]
        if away:
            self.unavailable[section] = f"{SERVICE_NAMES[away[0]]} is unreachable."
            return None
        try:
            return fn()
        except Exception as exc:
            self.unavailable[section] = self._reason(section, exc)
            return None

    def _reason(self, section: Section, exc: Exception) -> str:
        lost = exc if isinstance(exc, ServiceUnavailableError) else as_service_error(exc)
        if lost is not None:
            # Only a connection seen lost marks its service down (so later sections skip it
            # instead of waiting out timeouts); anything else, a missing topic or a DuckDB file
            # held by a worker, leaves the probe's verdict on the service and counts as an error.
            gone = service_lost(exc)
            if gone is not None and gone in NEEDS[section]:
                self.down(gone, str(lost))
            elif str(lost) not in self.service_errors:
                self.service_errors.append(str(lost))
            return str(lost)
        if isinstance(exc, OrdertrackError):
            return str(exc)
        if self.raise_bugs:
            raise exc
        # A bug in one section must not hide the others; it is logged and named, not swallowed.
        log.warning("status.section.failed", section=section, error=f"{type(exc).__name__}: {exc}")
        return f"internal error: {type(exc).__name__}: {exc}"


def gather(specs: Sequence[TableSpec], jobs: Sequence[str], cfg: DataQualityConfig, inputs: StatusInputs, *,
           now: float | None = None, raise_bugs: bool = False) -> StatusReport:
    """Read every section (services first, so the rest knows what to skip) and build the report.
    `raise_bugs`: let an unexpected error out instead of reporting it (ORDERTRACK_TRACEBACK)."""
    now = time.time() if now is None else now
    sections = _Sections(inputs.services(), raise_bugs)
    got = Readings()
    got.latest = sections.read("watermarks", inputs.latest_watermarks)
    got.history = sections.read("history", lambda: inputs.watermark_history(now - PUBLISHED_WINDOW_SECONDS))
    engine = _open_warehouse(sections, inputs)
    got.lag = sections.read("lag", lambda: inputs.lag(engine))
    got.ledger = sections.read("ledger", lambda: read_ledger(engine, specs) if engine else {})
    got.exceptions = sections.read("exceptions", lambda: read_open_exceptions(engine) if engine else {})
    job_states = sections.read("jobs", lambda: read_jobs(engine, jobs) if engine else [JobStatus(j) for j in jobs])
    if any(s.binlog for s in specs):
        got.connector = _connector(sections, inputs)
    got.running = sections.read("running", lambda: inputs.running(engine)) or {}
    got.unavailable = sections.unavailable
    report = StatusReport(now, cfg, build_tables(specs, now, cfg, got), list(sections.services.values()), job_states,
                          dict(sections.unavailable), other_exceptions(got.exceptions, [s.name for s in specs]),
                          sections.service_errors)
    log.debug("status.gathered", exit_code=report.exit_code, unavailable=sorted(report.unavailable))
    return report


def _open_warehouse(sections: _Sections, inputs: StatusInputs) -> WarehouseEngine | None:
    if not sections.services["warehouse"].reachable:
        return None
    try:
        engine = inputs.warehouse()
    except ConfigError:
        raise  # a WAREHOUSE_URL to fix is bad input: one sentence and exit 2, as in every command
    except Exception as exc:
        # Opening is no section of its own: a warehouse that cannot be opened is one that is away.
        lost: Exception | None = exc if isinstance(exc, OrdertrackError) else as_service_error(exc)
        if lost is None:
            if sections.raise_bugs:
                raise
            lost = exc
            log.warning("status.warehouse.failed", error=f"{type(exc).__name__}: {exc}")
        sections.down("warehouse", str(lost))
        return None
    if engine is None:
        sections.services["warehouse"] = replace(sections.services["warehouse"],
                                                 note="not created yet: nothing has landed")
    return engine


def _connector(sections: _Sections, inputs: StatusInputs) -> str:
    if inputs.connector_down is None:
        return "not checked"
    down = sections.read("connector", inputs.connector_down)
    if "connector" in sections.unavailable:
        return f"not checked: {sections.unavailable['connector']}"
    return down or "running"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret value replaced, should a client library ever echo one."""
    # Very short values would mangle ordinary words while hiding nothing worth hiding.
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def redacted(obj: T, secrets: Sequence[str | None]) -> T:
    """A copy of `obj` (the report, or any part of it) with `redact` applied to every string in
    it: one pass over everything both views print, instead of a guard at each message's origin."""
    if isinstance(obj, str):
        return redact(obj, secrets)  # type: ignore[return-value]
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: redacted(getattr(obj, f.name), secrets)  # type: ignore[return-value]
                               for f in fields(obj) if f.init})
    if isinstance(obj, dict):
        return {redacted(k, secrets): redacted(v, secrets) for k, v in obj.items()}  # type: ignore[return-value]
    if isinstance(obj, (list, tuple)):
        return type(obj)(redacted(v, secrets) for v in obj)  # type: ignore[return-value]
    return obj  # type: ignore[return-value]  # obj is still T: mypy's `not isinstance(obj, type)` above makes it "T | type"
