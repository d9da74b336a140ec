"""`ordertrack marts run | rebuild | sql`."""

from __future__ import annotations

from typing import Optional

import typer

from marts.rebuild import rebuild as rebuild_marts
from marts.rebuild import rebuild_files, rebuild_order
from marts.runner import MERGE_ORDER, SQL_DIR, MartRunner, MartSql, merge_files, merge_unmerged
from ordertrack.cli.output import print_json, print_table
from ordertrack.errors import ConfigError
from ordertrack.progress import track
from ordertrack.warehouse.factory import open_engine

app = typer.Typer(help="Merge landed batches into the marts, rebuild a mart from raw; show the rendered mart SQL.",
                  no_args_is_help=True)


@app.command()
def run(ctx: typer.Context) -> None:
    """Merge every batch that landed but was not merged (e.g. after a merge failure), oldest first."""
    state = ctx.obj
    merged = merge_unmerged(open_engine(state.config, state.settings), state.registry)
    rows = list(merged.items())
    print_table("marts run", ["table", "batches merged"], rows)


@app.command()
def rebuild(
    ctx: typer.Context,
    table: list[str] = typer.Option(..., "--table", "-t", help="Mart to rebuild (repeatable; run in merge order)."),
    full: bool = typer.Option(False, "--full", help="Empty the mart and its history and rebuild them from raw alone "
                              "(refused while raw lacks keys they hold)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would change; change nothing."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Merge every raw version of a table into its mart, newer wins (rows without a batch id too), then archive.

    For what `marts run` cannot merge: raw rows landed without a batch id, or a mart a since-fixed
    merge bug damaged. It never drops a row whose raw versions retention has trimmed; --full empties
    the mart and its history and rebuilds both from raw alone."""
    state = ctx.obj
    rebuild_order(state.registry, table)  # an unknown table is refused before the warehouse is opened
    engine = open_engine(state.config, state.settings)
    with track("marts rebuild" + (" (dry run)" if dry_run else ""), unit="steps") as progress:
        reports = rebuild_marts(engine, state.registry, table, full=full, dry_run=dry_run, progress=progress)
    if as_json:
        print_json([r.to_dict() for r in reports])
        return
    arrow = lambda a, b: f"{a}" if b is None else f"{a} -> {b}"  # noqa: E731
    moved = lambda r: ", ".join(f"{p} {n}" for p, n in r.archived.items()) or ("-" if dry_run else "nothing")  # noqa: E731
    rows = []
    for r in reports:
        assert r.before is not None  # the rebuild counts every table's rows before it changes anything
        rows.append((r.table, r.raw_keys, arrow(r.before.mart, r.after.mart if r.after else None),
                     arrow(r.before.history_total, r.after.history_total if r.after else None),
                     f"{r.mart_rows_changed} ({r.keys_missing} new keys, {r.newer_than_mart + r.newer_than_history} newer)",
                     *([r.not_in_raw] if full else []), moved(r)))
    print_table(
        "marts rebuild" + (" --full" if full else "") + (" (dry run: nothing changed)" if dry_run else ""),
        ["table", "raw keys", "mart rows", "history rows", "mart rows changed", *(["keys raw lacks"] if full else []),
         "archived"],
        rows,
    )


@app.command()
def sql(
    ctx: typer.Context,
    engine: str = typer.Option("duckdb", "--engine", help="duckdb, postgres or redshift"),
    table: Optional[str] = typer.Option(None, "--table", "-t"),
    landing: bool = typer.Option(False, "--landing",
                                 help="Print the statements one landing of the table runs instead (columns from the source catalog)."),
) -> None:
    """Print the mart SQL rendered for an engine, for review (no history tables assumed)."""
    if engine not in ("duckdb", "postgres", "redshift"):
        raise ConfigError("--engine must be duckdb, postgres or redshift.")
    state = ctx.obj
    names = [table] if table else list(MERGE_ORDER)
    for name in names:
        try:
            spec = state.registry.get(name)
        except KeyError as exc:
            raise ConfigError(f"{exc.args[0]}.") from None
        if landing:
            _print_landing(state, spec, engine)
            continue
        r = MartSql(spec, state.registry, engine, history=[f"hist_{spec.name}_2026_h1"])
        typer.echo(f"-- {spec.name}: mart table\n{MartRunner(state.registry, engine).mart_ddl(spec)};\n")
        for f in [*merge_files(spec.name), *sorted((SQL_DIR / "history").glob("*.sql")), *rebuild_files()]:
            typer.echo(f"-- {spec.name}: {f.parent.name}/{f.name}")
            typer.echo(r.render(f, hist=f"hist_{spec.name}_2026_h1") + ";\n")


def _print_landing(state, spec, engine: str) -> None:  # noqa: ANN001 - the CLI state
    """The statements of one landing transaction, in order, as the engine would run them."""
    from consumers.envelopes import CDC_COLUMNS
    from ordertrack.source.columns import source_columns
    from ordertrack.warehouse.landing import STAGE, plan

    columns = [c.name for c in source_columns(state.settings.mysql, spec)]
    if not columns:
        raise ConfigError(f"The source has no table {spec.source_full_name} (or the pipeline user cannot read it).")
    columns += [c.name for c in CDC_COLUMNS] if spec.binlog else []
    stage = {"duckdb": f"<the batch's typed Arrow table, registered as {STAGE} and read in place>",
             "postgres": f"CREATE TEMP TABLE {STAGE} (...); COPY {STAGE} (...) FROM STDIN",
             "redshift": f"CREATE TEMP TABLE {STAGE} (...); COPY {STAGE} FROM 's3://<staging>/<batch>.manifest' "
                         "IAM_ROLE '<role>' FORMAT AS PARQUET MANIFEST"}[engine]
    typer.echo(f"-- {spec.name}: one landing transaction ({engine}); the parameters are bound by the driver")
    for name, text in plan(spec, columns, state.config.target.raw_schema, state.config.target.mart_schema,
                           engine).items():
        if name == "fresh_table":
            typer.echo(f"-- stage\n{stage};\n")
        note = " (only while a replay's hole is open)" if name in ("replace", "advance") else ""
        typer.echo(f"-- {name}{note}\n{text};\n")
    unstage = f"<{STAGE} unregistered>" if engine == "duckdb" else f"DROP TABLE {STAGE}"
    typer.echo(f"-- unstage\n{unstage};\n")


@app.command()
def counts(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Rows in each mart and its half-year history tables (read only; a mart not made yet shows as such)."""
    from marts.rebuild import mart_rows

    state = ctx.obj
    found = mart_rows(open_engine(state.config, state.settings, create="never"), state.registry)
    if as_json:
        print_json({name: (rows.to_dict() if rows else None) for name, rows in found.items()})
        return
    print_table("marts", ["table", "mart rows", "history rows"],
                [(name, rows.mart, rows.history_total) if rows else (name, "not made yet", "-")
                 for name, rows in found.items()])
