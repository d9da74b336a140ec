"""`ordertrack watermarks show | seed | set | import | export`."""

from __future__ import annotations

import time
from typing import Optional

import typer

from ordertrack.cli import inputs
from ordertrack.cli.output import print_json, print_table
from ordertrack.errors import ConfigError
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.source.connection import connect, one_row
from ordertrack.timeparse import format_utc
from ordertrack.watermarks.model import Watermark, WatermarkStatus
from ordertrack.watermarks.s3_files import export_files, import_files, s3_client
from producers.runner import watermark_store

app = typer.Typer(help="Show and move the per-table watermarks.", no_args_is_help=True)


def _store(ctx: typer.Context):
    KafkaAdmin(ctx.obj.settings.kafka).ensure_topics(pipeline_topics(ctx.obj.config))
    return watermark_store(ctx.obj.config, ctx.obj.settings)


def _rows(ctx: typer.Context, marks: dict[str, Watermark]) -> list[dict]:
    now = time.time()
    out = []
    for spec in ctx.obj.registry:
        wm = marks.get(spec.name)
        out.append({
            "table": spec.name,
            "position": wm.position if wm else None,
            "position_utc": format_utc(wm.position) if wm else None,
            "status": wm.status if wm else None,
            "window_id": wm.window_id if wm else None,
            "rows": wm.row_count if wm else None,
            "dead_lettered": wm.dead_lettered if wm else None,
            "age_seconds": round(now - wm.position) if wm else None,
            "written_at_utc": format_utc(wm.written_at) if wm else None,
        })
    return out


@app.command()
def show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Per table: position, last window, its rows, and how old the position is."""
    rows = _rows(ctx, _store(ctx).latest())
    if as_json:
        print_json(rows)
        return
    print_table("watermarks", ["table", "position (UTC)", "status", "rows", "age", "window"],
                [(r["table"], r["position_utc"], r["status"], r["rows"],
                  f"{r['age_seconds']}s" if r["age_seconds"] is not None else None, r["window_id"]) for r in rows])


def _apply_moves(ctx: typer.Context, moves: dict[str, int], status: WatermarkStatus, apply: bool, note: str) -> None:
    store = _store(ctx)
    current = store.latest()
    rows = [(t, format_utc(current[t].position) if t in current else None, format_utc(pos)) for t, pos in moves.items()]
    print_table(f"watermarks {'moved' if apply else 'to move (dry run: add --apply)'}", ["table", "from", "to"], rows)
    if apply:
        store.write([Watermark(table=t, position=pos, status=status, note=note) for t, pos in moves.items()])


@app.command()
def seed(
    ctx: typer.Context,
    to_now: bool = typer.Option(False, "--to-now", help="Move to the source clock minus the buffer (skip history)."),
    table: Optional[list[str]] = typer.Option(None, "--table", "-t"),
    apply: bool = typer.Option(False, "--apply", help="Write; without it this is a dry run."),
) -> None:
    """Move watermarks to now (after long downtime, to skip history). A dry run unless --apply."""
    if not to_now:
        raise ConfigError("Say where to seed: --to-now.")
    state = ctx.obj
    with connect(state.settings.mysql) as conn, conn.cursor() as cur:
        cur.execute("SELECT UNIX_TIMESTAMP()")
        now = int(one_row(cur)[0])
    pos = now - state.config.window_settings.buffer_minutes * 60
    specs = _select(ctx, table)
    _apply_moves(ctx, {s.name: pos for s in specs}, "seeded", apply, "seed --to-now")


@app.command("set")
def set_(
    ctx: typer.Context,
    table: str = typer.Option(..., "--table", "-t"),
    at: str = typer.Option(..., "--at", help="'YYYY-mm-dd HH:MM:SS' UTC or unix seconds."),
) -> None:
    """Move one table's watermark (e.g. back, to replay a period from the source)."""
    spec = inputs.table(ctx.obj.registry, table)
    pos = inputs.utc_time("--at", at)
    latest = time.time() + ctx.obj.config.processing.max_clock_drift_seconds
    if pos > latest:  # the producer would skip every row written until the clock got there
        raise ConfigError(f"--at {format_utc(pos)} is in the future: a watermark can only be moved to a time "
                          "that has passed.")
    _apply_moves(ctx, {spec.name: pos}, "set", True, f"set --at {at}")


@app.command("import")
def import_(
    ctx: typer.Context,
    source: str = typer.Option(..., "--from", help="s3://bucket/prefix/ holding the old system's files."),
    apply: bool = typer.Option(False, "--apply", help="Write; without it this is a dry run."),
) -> None:
    """Take over the old batch job's watermarks from its S3 files."""
    moves = import_files(s3_client(ctx.obj.settings.s3), source, list(ctx.obj.registry))
    if not moves:
        raise ConfigError(f"No watermark file for any configured table under {source}.")
    _apply_moves(ctx, moves, "imported", apply, f"import from {source}")


@app.command()
def export(ctx: typer.Context, to: str = typer.Option(..., "--to", help="s3://bucket/prefix/")) -> None:
    """Write the watermarks as the old batch job's S3 files (to hand back, or to compare)."""
    written = export_files(s3_client(ctx.obj.settings.s3), to, list(ctx.obj.registry), _store(ctx).latest())
    typer.echo("\n".join(written) or "no table has a watermark yet")


def _select(ctx: typer.Context, names: list[str] | None) -> list:
    return inputs.tables(ctx.obj.registry, names)
