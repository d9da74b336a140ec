"""`ordertrack exceptions list | resolve`."""

from __future__ import annotations

from typing import Optional

import typer

from ordertrack.cli import inputs
from ordertrack.cli.output import print_json, print_table
from ordertrack.errors import ConfigError
from ordertrack.warehouse.factory import open_engine
from quality import exceptions

app = typer.Typer(help="The data-quality exceptions table: list and resolve.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", help="Resolved ones too."),
    type_: Optional[str] = typer.Option(None, "--type", help="Only this exception type."),
    order_id: Optional[int] = typer.Option(None, "--order-id"),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many rows."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Exceptions, newest first (open ones unless --all)."""
    state = ctx.obj
    rows = exceptions.list_exceptions(open_engine(state.config, state.settings, create="never"), include_resolved=all_,
                                      exception_type=type_, order_id=order_id, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(f"exceptions ({'all' if all_ else 'open'}, newest first)",
                ["order_id", "type", "table", "detected", "notes", "resolved", "by", "resolution"],
                [(r["order_id"], r["exception_type"], r["source_table"], r["detected_at"], (r["notes"] or "")[:120],
                  r["resolved_at"], r["resolved_by"], r["resolution_notes"]) for r in rows])


@app.command()
def resolve(
    ctx: typer.Context,
    type_: str = typer.Option(..., "--type", help="Exception type, e.g. order_without_scan_events."),
    note: str = typer.Option(..., "--note", help="Why it is resolved (recorded)."),
    order_id: Optional[int] = typer.Option(None, "--order-id", help="The order; omit for a table-level exception."),
    table: Optional[str] = typer.Option(None, "--table", help="For a table-level exception (no order id)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who resolves it (default: $ORDERTRACK_USER or the OS user)."),
) -> None:
    """Resolve the open exceptions of an order (or a table) and type, recording who, when and why."""
    if (order_id is None) == (table is None):
        raise ConfigError("Give exactly one of --order-id and --table.")
    if not note.strip():
        raise ConfigError("--note must say why the exception is resolved.")
    state = ctx.obj
    if table is not None:  # an unknown name would only ever match nothing: say so instead
        table = inputs.table(state.registry, table).name
    n = exceptions.resolve(open_engine(state.config, state.settings, create="never"), order_id=order_id,
                           exception_type=type_, note=note.strip(), by=by or exceptions.current_user(),
                           source_table=table)
    what = f"order {order_id}" if order_id is not None else f"table {table}"
    if not n:
        typer.echo(f"no open {type_} exception for {what}", err=True)
        raise typer.Exit(1)
    typer.echo(f"resolved {n} open {type_} exception(s) for {what}")
