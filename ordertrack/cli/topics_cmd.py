"""`ordertrack topics create | list | acls`."""

from __future__ import annotations

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.kafka.acls import pipeline_acls, pipeline_grants
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics

app = typer.Typer(help="Create and list the pipeline's Kafka topics.", no_args_is_help=True)


@app.command()
def create(ctx: typer.Context) -> None:
    """Create the missing table, watermark and dead-letter topics (partitions and retention from config)."""
    admin = KafkaAdmin(ctx.obj.settings.kafka)
    created = admin.ensure_topics(pipeline_topics(ctx.obj.config))
    typer.echo(f"created {len(created)} topic(s): {', '.join(created) or 'none missing'}")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The pipeline's topics, their role, and whether they exist."""
    existing = KafkaAdmin(ctx.obj.settings.kafka).list_topics()
    rows = [
        {"topic": t.name, "role": t.role, "exists": t.name in existing, "partitions": existing.get(t.name)}
        for t in pipeline_topics(ctx.obj.config)
    ]
    if as_json:
        print_json(rows)
    else:
        print_table("topics", ["topic", "role", "exists", "partitions"], [tuple(r.values()) for r in rows])


@app.command()
def acls(
    ctx: typer.Context,
    principal: str = typer.Option("User:ordertrack", "--principal",
                                  help="The pipeline's Kafka principal (User:<SASL user or certificate name>)."),
    apply: bool = typer.Option(False, "--apply", help="Create them (needs an administrator's principal)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The Kafka ACLs this pipeline's principal needs, and nothing more; --apply creates them."""
    if not principal.startswith("User:") or len(principal) <= len("User:"):
        raise typer.BadParameter("a principal looks like User:<name>", param_hint="--principal")
    grants = pipeline_grants(ctx.obj.config)
    if apply:
        KafkaAdmin(ctx.obj.settings.kafka).create_acls(pipeline_acls(ctx.obj.config, principal))
    rows = [{"principal": principal, "resource": g.resource, "pattern": g.pattern, "name": g.name,
             "operation": g.operation, "why": g.why} for g in grants]
    if as_json:
        print_json({"applied": apply, "acls": rows})
    else:
        print_table(f"ACLs for {principal}" + (" (applied)" if apply else ""),
                    ["resource", "pattern", "name", "operation", "why"],
                    [(r["resource"], r["pattern"], r["name"], r["operation"], r["why"]) for r in rows])
