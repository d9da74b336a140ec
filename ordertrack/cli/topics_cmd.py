"""`ordertrack topics create | list | acls`."""

from __future__ import annotations

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.kafka.acls import connect_grants, pipeline_grants
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.stack.connect import CONNECT_USER, GROUP_ID, STORAGE_PREFIX

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
    principal: str | None = typer.Option(
        None, "--principal", help="The Kafka principal (User:<SASL user or certificate name>); default "
        "User:ordertrack, or User:ordertrack-connect with --connect."),
    connect: bool = typer.Option(False, "--connect", help="The Kafka Connect worker's ACLs for this pipeline's "
                                 "Debezium connector (its group, internal topics, transactional ids, CDC topics)."),
    group_id: str = typer.Option(GROUP_ID, "--connect-group", help="With --connect: the worker's group.id."),
    storage_prefix: str = typer.Option(STORAGE_PREFIX, "--connect-storage-prefix",
                                       help="With --connect: its internal topics are <prefix>.configs|offsets|status."),
    apply: bool = typer.Option(False, "--apply", help="Create them (needs an administrator's principal)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The Kafka ACLs this pipeline's principal (or, with --connect, its Kafka Connect worker's)
    needs, and nothing more; --apply creates them."""
    principal = principal or (f"User:{CONNECT_USER}" if connect else "User:ordertrack")
    if not principal.startswith("User:") or len(principal) <= len("User:"):
        raise typer.BadParameter("a principal looks like User:<name>", param_hint="--principal")
    config = ctx.obj.config
    grants = connect_grants(config, group_id, storage_prefix) if connect else pipeline_grants(config)
    if apply:
        KafkaAdmin(ctx.obj.settings.kafka).create_acls([g.binding(principal) for g in grants])
    rows = [{"principal": principal, "resource": g.resource, "pattern": g.pattern, "name": g.name,
             "operation": g.operation, "why": g.why} for g in grants]
    if as_json:
        print_json({"applied": apply, "acls": rows})
    else:
        print_table(f"ACLs for {principal}" + (" (applied)" if apply else ""),
                    ["resource", "pattern", "name", "operation", "why"],
                    [(r["resource"], r["pattern"], r["name"], r["operation"], r["why"]) for r in rows])
