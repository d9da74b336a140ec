"""Where the CLI joins the stages: what the checks read from the source and Kafka, and the jobs
the sidecar runs. The stages never import each other; this module hands each what it needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from ordertrack.identifiers import quote_mysql
from ordertrack.source.connection import connect
from ordertrack.tables import TableSpec
from ordertrack.warehouse.engine import WarehouseEngine
from quality.runner import DataQuality, DqInputs
from sidecar.scheduler import Job


def dq_inputs(state, engine: WarehouseEngine | None) -> DqInputs:  # noqa: ANN001 - CliState
    from consumers.lag import measure_lag
    from producers.runner import watermark_store

    config, settings = state.config, state.settings
    store = watermark_store(config, settings)

    def source_versions(spec: TableSpec, start: int, end: int) -> set[tuple]:
        cols = ", ".join(quote_mysql(c) for c in (*spec.key_columns, spec.cursor_column))
        cursor = quote_mysql(spec.cursor_column)
        with connect(settings.mysql, database=spec.database, read_timeout=config.processing.query_timeout_seconds) as conn:
            with conn.cursor() as cur:
                cur.execute(f"SELECT {cols} FROM {quote_mysql(spec.database)}.{quote_mysql(spec.name)} "
                            f"WHERE {cursor} >= %s AND {cursor} < %s", (start, end))
                return {tuple(r) for r in cur.fetchall()}

    def lag() -> dict[str, tuple[int, float]]:
        assert engine is not None, "lag needs the warehouse's ledger"  # status passes None and reads only connector_down
        rows = measure_lag(config, settings, engine, list(state.registry))
        out: dict[str, tuple[int, float]] = {}
        for r in rows:
            m, a = out.get(r.table, (0, 0.0))
            out[r.table] = (m + r.lag_messages, max(a, r.lag_minutes))
        return out

    def dead_letters(spec: TableSpec, since: float) -> list[tuple[str, tuple]]:
        from ordertrack.kafka.reader import read_since, reader

        topic = config.kafka.dead_letter_topic
        c = reader(settings.kafka, f"{config.pipeline.name}.dq.dead-letters")
        try:
            records = read_since(c, settings.kafka.bootstrap_servers, topic, since, "run `ordertrack topics create`")
        finally:
            c.close()
        return [v for m in records if m.key() == spec.name.encode() and (v := dead_letter_version(spec, m.value()))]

    def connector_down() -> str | None:
        from connectors.connect_api import ConnectApi

        name = config.cdc.connector
        st = ConnectApi(settings.connect.url, timeout=30).status(name)
        if not st.exists:
            return f"connector {name} is not in Kafka Connect: run `ordertrack connectors apply`"
        if st.failed:
            return f"connector {name} failed: {st.trace} (fix it, then `ordertrack connectors restart`)"
        if not st.running:
            tasks = ", ".join(str(t.get("state")) for t in st.tasks) or "none"
            return f"connector {name} is {st.state} (tasks: {tasks}): it carries no changes"
        return None

    return DqInputs(source_versions=source_versions, watermark_history=store.history,
                    latest_watermarks=store.latest, lag=lag, dead_letters=dead_letters, connector_down=connector_down)


def dead_letter_version(spec: TableSpec, record: bytes | None) -> tuple[str, tuple] | None:
    """(stage, (key..., cursor)) of the row a dead-letter record carries, or None when it no longer
    tells (a value cut at 64 KiB, not JSON, a key or cursor missing)."""
    try:
        doc = orjson.loads(record or b"")
        stage = doc.get("stage")
        row = doc.get("row") if stage == "producer" else orjson.loads(doc.get("value") or "")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None
    if not isinstance(row, dict):
        return None
    keys = tuple(row.get(c) for c in spec.key_columns)
    cursor = _unix_seconds(row.get(spec.cursor_column))
    # A row the producer could not serialise is kept as repr() strings: its keys may not compare
    # equal to the source's (then it is not taken out, and any loss stays visible), but nothing in
    # it may break the comparison itself.
    if cursor is None or not all(isinstance(k, (str, int, float)) and not isinstance(k, bool) for k in keys):
        return None
    return stage, (*keys, cursor)


def _unix_seconds(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def scheduler_jobs(state, engine: WarehouseEngine) -> list[Job]:  # noqa: ANN001 - CliState
    from marts.maintenance import archive_all, trim_raw

    config, registry = state.config, state.registry

    def retention(slot: datetime) -> dict[str, Any]:
        return trim_raw(engine, registry, slot, config.retention.raw_hours)

    def archive(slot: datetime) -> dict[str, Any]:
        return archive_all(engine, registry)

    def merge(slot: datetime) -> dict[str, Any]:
        from marts.runner import merge_unmerged

        return {"batches_merged": merge_unmerged(engine, registry)}

    def vacuum(slot: datetime) -> dict[str, Any]:
        return {"statements": engine.vacuum(list(registry))}

    def dq(slot: datetime) -> dict[str, Any]:
        from sidecar.metrics import DQ_OPEN_EXCEPTIONS

        report = DataQuality(engine, registry, config.dq, dq_inputs(state, engine)).run()
        DQ_OPEN_EXCEPTIONS.clear()  # a type no longer open disappears instead of keeping its last value
        for exception_type, n in report.open_exceptions.items():
            DQ_OPEN_EXCEPTIONS.labels(exception_type).set(n)
        if report.failed_checks:  # recorded as a failed run; the exceptions written so far stay
            raise RuntimeError(f"check(s) failed to run: {', '.join(report.failed_checks)}")
        return {"open_exceptions": report.open_exceptions,
                "checks": {c.check: {"status": c.status, "found": c.found, "new": c.new_exceptions,
                                     "resolved": c.resolved_exceptions} for c in report.checks}}

    s = config.schedule
    return [Job("retention", s.retention, retention), Job("archive", s.archive, archive),
            Job("merge", s.merge, merge), Job("vacuum", s.vacuum, vacuum), Job("dq", s.dq, dq)]
