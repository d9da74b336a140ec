"""`ordertrack topics create | list`."""

from __future__ import annotations

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics

app = typer.Typer(help="Create and list the pipeline's Kafka topics.", no_args_is_help=True)


@app.command()
def create(ctx: typer.Context) -> None:
    """Create the missing table, watermark and dead-letter topics (partitions and retention from config)."""
    admin = KafkaAdmin(ctx.obj.settings.kafka.bootstrap_servers)
    created = admin.ensure_topics(pipeline_topics(ctx.obj.config))
    typer.echo(f"created {len(created)} topic(s): {', '.join(created) or 'none missing'}")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The pipeline's topics, their role, and whether they exist."""
    existing = KafkaAdmin(ctx.obj.settings.kafka.bootstrap_servers).list_topics()
    rows = [
        {"topic": t.name, "role": t.role, "exists": t.name in existing, "partitions": existing.get(t.name)}
        for t in pipeline_topics(ctx.obj.config)
    ]
    if as_json:
        print_json(rows)
    else:
        print_table("topics", ["topic", "role", "exists", "partitions"], [tuple(r.values()) for r in rows])
