"""`ordertrack config check | show`."""

from __future__ import annotations

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.config import default_config_path

app = typer.Typer(help="Validate and show the pipeline configuration.", no_args_is_help=True)


@app.command()
def check(ctx: typer.Context) -> None:
    """Validate the pipeline YAML and the environment; exit non-zero naming the first problem."""
    state = ctx.obj
    cfg = state.config
    state.settings  # noqa: B018 - validates the environment
    typer.echo(f"{state.config_path or default_config_path()}: ok ({len(cfg.tables)} tables)")


@app.command()
def show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the tables with their derived topic, raw and mart names."""
    specs = list(ctx.obj.registry)
    if as_json:
        print_json([s.__dict__ for s in specs])
        return
    print_table(
        "tables",
        ["table", "cursor", "key", "tie-breaker", "topic", "raw", "mart", "page"],
        [
            (s.name, s.cursor_column, ",".join(s.key_columns), s.id_column, s.topic,
             f"{s.raw_schema}.{s.raw_table}", f"{s.mart_schema}.{s.mart_table}", s.batch_size)
            for s in specs
        ],
    )
