"""`ordertrack source counts`: what the source holds, per table."""

from __future__ import annotations

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.source.catalog import table_counts

app = typer.Typer(help="Look at the source database.", no_args_is_help=True)


@app.command()
def counts(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Rows and cursor range of each configured source table."""
    rows = table_counts(ctx.obj.settings.mysql, list(ctx.obj.registry))
    if as_json:
        print_json(rows)
        return
    print_table(
        f"source {ctx.obj.config.source.database}",
        ["table", "rows", "min cursor", "max cursor"],
        [(r["table"], r["rows"], r["min_cursor_utc"], r["max_cursor_utc"]) for r in rows],
    )
