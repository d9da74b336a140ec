"""`ordertrack ledger show | reset`: the warehouse's record of which Kafka offsets have landed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

from ordertrack.cli import inputs
from ordertrack.cli.output import print_json, print_table
from ordertrack.errors import ConfigError
from ordertrack.identifiers import quote_ansi as q
from ordertrack.warehouse.engine import LEDGER_TABLE
from ordertrack.warehouse.factory import open_engine
from ordertrack.warehouse.positions import REPLAYS_TABLE

app = typer.Typer(help="Show or reset the ingest ledger (which Kafka offsets each table has landed).",
                  no_args_is_help=True)


@app.command()
def show(
    ctx: typer.Context,
    table: Optional[list[str]] = typer.Option(None, "--table", "-t"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Per table and partition: the next offset to land, batches landed and batches not merged."""
    state = ctx.obj
    engine = open_engine(state.config, state.settings, create="never")
    rows = []
    for spec in inputs.tables(state.registry, table):
        for p, nxt, batches, unmerged in engine.query(
            f"SELECT partition, MAX(last_offset) + 1, COUNT(DISTINCT batch_id), "
            f"COUNT(DISTINCT CASE WHEN merged_at IS NULL THEN batch_id END) "
            f"FROM {q(engine.raw_schema)}.{q(LEDGER_TABLE)} WHERE topic = {engine.placeholder} "
            f"GROUP BY partition ORDER BY partition", [spec.topic],
        ):
            rows.append({"table": spec.name, "topic": spec.topic, "partition": int(p), "next_offset": int(nxt),
                         "batches": int(batches), "unmerged_batches": int(unmerged)})
    if as_json:
        print_json(rows)
        return
    print_table("ingest ledger", ["table", "partition", "next offset", "batches", "unmerged"],
                [(r["table"], r["partition"], r["next_offset"], r["batches"], r["unmerged_batches"]) for r in rows])


@app.command()
def reset(
    ctx: typer.Context,
    table: str = typer.Option(..., "--table", "-t", help="The table whose topic was recreated."),
    yes: bool = typer.Option(False, "--yes", help="Do it (without it, only say what would be removed)."),
) -> None:
    """Forget every offset landed from the table's topic, so landing starts again at the topic's
    earliest offset. For a topic that was deleted and created again (its offsets restarted).
    Raw rows already landed stay; the marts' newer-wins merge makes re-landed versions harmless."""
    state = ctx.obj
    spec = inputs.table(state.registry, table)
    engine = open_engine(state.config, state.settings, create="never")
    ledger = f"{q(engine.raw_schema)}.{q(LEDGER_TABLE)}"
    unmerged = engine.unmerged_batches(spec.topic)
    if unmerged:  # once forgotten, their raw rows could never be found and merged
        raise ConfigError(f"{len(unmerged)} landed batch(es) of {spec.name} are not merged yet: run "
                          "`ordertrack marts run` first, then reset the ledger.")
    n = engine.query(f"SELECT COUNT(*) FROM {ledger} WHERE topic = {engine.placeholder}", [spec.topic])[0][0]
    if not yes:
        typer.echo(f"{n} ledger row(s) of {spec.topic} would be removed; run again with --yes to remove them.")
        return
    replays = f"{q(engine.raw_schema)}.{q(REPLAYS_TABLE)}"
    now = datetime.now(timezone.utc).replace(tzinfo=None)

    def forget(execute) -> None:  # noqa: ANN001 - an Execute
        execute(f"DELETE FROM {ledger} WHERE topic = :topic", {"topic": spec.topic})
        # A replay's hole counts offsets of the topic's earlier life: it must not move landing.
        execute(f"UPDATE {replays} SET finished_at = :now, requested = requested || ' (closed by ledger reset)' "
                "WHERE topic = :topic AND finished_at IS NULL", {"topic": spec.topic, "now": now})

    engine.in_transaction(lambda execute: forget(_named(execute, engine.dialect)))
    typer.echo(f"removed {n} ledger row(s) of {spec.topic}; {spec.name} lands again from the topic's earliest offset.")


def _named(execute, dialect: str):  # noqa: ANN001, ANN202 - an Execute in, an Execute out
    """Statements written with `:name` parameters, rendered for the engine (as the mart SQL is)."""
    from ordertrack.warehouse.sqlfiles import render_text

    return lambda sql, params: execute(render_text(sql, dialect, {}), params)
