"""`ordertrack marts run | sql`."""

from __future__ import annotations

from typing import Optional

import typer

from ordertrack.cli.output import print_table
from ordertrack.errors import ConfigError
from ordertrack.warehouse.factory import open_engine
from marts.runner import MERGE_ORDER, SQL_DIR, MartRunner, MartSql, merge_files, merge_unmerged

app = typer.Typer(help="Merge landed batches into the marts; show the rendered mart SQL.", no_args_is_help=True)


@app.command()
def run(ctx: typer.Context) -> None:
    """Merge every batch that landed but was not merged (e.g. after a merge failure), oldest first."""
    state = ctx.obj
    merged = merge_unmerged(open_engine(state.config, state.settings), state.registry)
    rows = list(merged.items())
    print_table("marts run", ["table", "batches merged"], rows)


@app.command()
def sql(
    ctx: typer.Context,
    engine: str = typer.Option("duckdb", "--engine", help="redshift or duckdb"),
    table: Optional[str] = typer.Option(None, "--table", "-t"),
) -> None:
    """Print the mart SQL rendered for an engine, for review (no history tables assumed)."""
    if engine not in ("duckdb", "redshift"):
        raise ConfigError("--engine must be redshift or duckdb.")
    state = ctx.obj
    names = [table] if table else list(MERGE_ORDER)
    for name in names:
        try:
            spec = state.registry.get(name)
        except KeyError as exc:
            raise ConfigError(f"{exc.args[0]}.") from None
        r = MartSql(spec, state.registry, engine, history=[f"hist_{spec.name}_2026_h1"])
        typer.echo(f"-- {spec.name}: mart table\n{MartRunner(state.registry, engine).mart_ddl(spec)};\n")
        for f in [*merge_files(spec.name), *sorted((SQL_DIR / "history").glob("*.sql"))]:
            typer.echo(f"-- {spec.name}: {f.parent.name}/{f.name}")
            typer.echo(r.render(f, hist=f"hist_{spec.name}_2026_h1") + ";\n")
