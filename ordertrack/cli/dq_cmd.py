"""`ordertrack dq run | reconcile`."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Optional

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.errors import ConfigError, NotCheckableYet
from ordertrack.identifiers import quote_ansi as q
from ordertrack.identifiers import quote_mysql
from ordertrack.progress import track
from ordertrack.tables import TableSpec
from ordertrack.timeparse import format_utc
from ordertrack.warehouse.engine import WarehouseEngine
from ordertrack.warehouse.factory import open_engine
from quality.runner import CHECKS, DataQuality

CARRIED_LOOKBACK_SECONDS = 86400

app = typer.Typer(help="Data-quality checks and key-by-key reconciliation.", no_args_is_help=True)


@app.command()
def run(
    ctx: typer.Context,
    check: Optional[list[str]] = typer.Option(None, "--check", help=f"Run only these: {', '.join(CHECKS)}."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable results."),
) -> None:
    """Run the checks, record findings in the exceptions table. Exit 0 when clean, 1 while any
    exception is open (a data problem), 4 when a check could not run (an outage)."""
    from ordertrack.cli.wiring import dq_inputs

    state = ctx.obj
    unknown = sorted(set(check or []) - set(CHECKS))
    if unknown:
        raise ConfigError(f"Unknown check {', '.join(unknown)}; the checks are {', '.join(CHECKS)}.")
    engine = open_engine(state.config, state.settings)
    needs_outside = not check or {"extraction", "freshness"} & set(check)
    report = DataQuality(engine, state.registry, state.config.dq, dq_inputs(state, engine) if needs_outside else None).run(check)
    if as_json:
        print_json(report.to_dict())
    else:
        print_table("data quality", ["check", "status", "found", "new exceptions", "resolved", "summary"],
                    [(c.check, c.status, c.found, c.new_exceptions, c.resolved_exceptions, c.message) for c in report.checks])
        if report.open_exceptions:
            typer.echo("open exceptions: " + ", ".join(f"{t} {n}" for t, n in report.open_exceptions.items())
                       + " (see `ordertrack exceptions list`)")
        for failed in report.could_not_check:
            typer.echo(f"could not check {failed['check']}: {failed['error']}", err=True)
    raise typer.Exit(report.exit_code)


@app.command()
def reconcile(
    ctx: typer.Context,
    table: str = typer.Option(..., "--table", "-t", help="Source table to compare with its mart (and history)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only rows with a cursor at or after this UTC time "
                                        "(2026-11-28T03:00:00, or unix seconds)."),
    until: Optional[str] = typer.Option(None, "--until", help="Only rows with a cursor before this UTC time. Default: "
                                        "as far as the pipeline has carried the table (its newest window wholly merged)."),
    limit: int = typer.Option(50, "--limit", help="Keys listed per kind (the counts are always complete)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the keys missing from the mart, extra in it, or stale (another cursor), by chunked hashes.
    Exit 0 when clean, 1 when any."""
    from ordertrack.source.connection import connect
    from ordertrack.timeparse import parse_utc
    from quality.catalog import mart_with_history, table_exists
    from quality.reconcile import SqlSide
    from quality.reconcile import reconcile as diff

    state = ctx.obj
    try:
        spec = state.registry.get(table)
    except KeyError as exc:
        raise ConfigError(f"{exc.args[0]}.") from None
    try:
        since_ts = None if since is None else parse_utc(since)
        until_ts = None if until is None else parse_utc(until)
    except ValueError as exc:
        raise ConfigError(f"--since/--until: {exc}.") from None
    if since_ts is not None and until_ts is not None and until_ts <= since_ts:
        raise ConfigError("--until must be later than --since.")
    engine = open_engine(state.config, state.settings, create="never")
    if not table_exists(engine, spec.mart_schema, spec.mart_table):
        raise NotCheckableYet(f"The mart {spec.mart_schema}.{spec.mart_table} does not exist yet: nothing has landed.")
    bound = "--until" if until_ts is not None else "carried"
    if until_ts is None:
        until_ts = _carried_until(state, engine, spec)
    tables = mart_with_history(engine, spec)
    cols = ", ".join(q(c) for c in (*spec.key_columns, spec.cursor_column))
    # A soft-deleted row stays in the mart, marked: it is gone from the source, so not compared.
    live = " WHERE COALESCE(cdc_op, '') <> 'd'" if spec.binlog and spec.deletes == "soft" else ""
    union = " UNION ALL ".join(f"SELECT {cols} FROM {q(s)}.{q(t)}{live}" for s, t in tables)
    started = datetime.now(timezone.utc)
    with connect(state.settings.mysql, database=spec.database) as conn:
        def mysql_query(sql: str, params: list) -> list[tuple]:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())

        source = SqlSide("source", mysql_query, spec, f"{quote_mysql(spec.database)}.{quote_mysql(spec.name)}",
                         "mysql", since_ts, until_ts)
        target = SqlSide("mart", engine.query, spec, f"({union}) AS m", engine.dialect, since_ts, until_ts)
        # Progress in first-key values (the ranges it compares), not rows: both sides are only
        # counted range by range.
        with track(f"dq reconcile {spec.name}", unit=f"{spec.key_columns[0]} values") as progress:
            result = diff(spec.name, spec.key_columns, source, target, since=since_ts, until=until_ts, progress=progress)
    seconds = round((datetime.now(timezone.utc) - started).total_seconds(), 2)
    if as_json:
        print_json({"table": spec.name, "since": since_ts, "until": until_ts, "until_from": bound,
                    "clean": result.clean, "seconds": seconds,
                    "counts": {"missing": len(result.missing), "extra": len(result.extra), "stale": len(result.stale)},
                    "missing": result.missing[:limit], "extra": result.extra[:limit], "stale": result.stale[:limit],
                    "ranges_compared": result.ranges_compared, "rows_fetched": result.rows_fetched})
    else:
        rows = [("missing in mart", k) for k in result.missing[:limit]] + [("extra in mart", k) for k in result.extra[:limit]] \
            + [("stale in mart", k) for k in result.stale[:limit]]
        print_table(f"reconcile {spec.name} up to {format_utc(until_ts)} ({bound}): "
                    f"{len(result.missing)} missing, {len(result.extra)} extra, "
                    f"{len(result.stale)} stale ({seconds}s, {result.rows_fetched} rows fetched)",
                    ["kind", "key and cursors"], rows)
    raise typer.Exit(0 if result.clean else 1)


def _carried_until(state, engine: WarehouseEngine, spec: TableSpec) -> int:  # noqa: ANN001 - CliState
    """The cursor below which every version of `spec` has had its chance to reach the mart."""
    from quality.carried import carried_until, merged_next_offsets

    if spec.binlog:
        from quality.carried import binlog_carried_until
        from quality.catalog import mart_with_history

        carried = binlog_carried_until(engine, mart_with_history(engine, spec), spec.topic)
        if carried is None:
            raise NotCheckableYet(f"No change event of {spec.name} is merged into the mart yet, so there is no "
                                  "carried range to compare; pass --until TS to compare up to a time of your choosing.")
        return carried - state.config.window_settings.buffer_minutes * 60
    from producers.runner import watermark_store

    store = watermark_store(state.config, state.settings)
    merged = merged_next_offsets(engine, spec.topic)
    # The topic keeps a day of records uncompacted; the pipeline is judged from there.
    marks = [m for m in store.history(time.time() - CARRIED_LOOKBACK_SECONDS) if m.table == spec.name]
    latest = store.latest().get(spec.name)
    if not marks and latest is not None:
        marks = [latest]
    carried = carried_until(marks, merged)
    if carried is None:
        raise NotCheckableYet(f"No window of {spec.name} of the last day is wholly in the mart yet, so there is no "
                          "carried range to compare; pass --until TS to compare up to a time of your choosing.")
    return carried
