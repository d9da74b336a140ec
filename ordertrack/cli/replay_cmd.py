"""`ordertrack replay`: re-land a period of a table from its Kafka topic (see `consumers.replay`)."""

from __future__ import annotations

import time
from typing import Optional

import typer

from consumers.replay import apply_replay, parse_offsets, plan_replay, replays
from ordertrack.cli import inputs
from ordertrack.cli.output import print_json, print_table
from ordertrack.progress import track
from ordertrack.warehouse.factory import open_engine


def replay(
    ctx: typer.Context,
    table: str = typer.Option(..., "--table", "-t", help="The table whose period is re-landed."),
    from_time: Optional[str] = typer.Option(None, "--from", help="Re-land messages written since this time (UTC)."),
    from_offset: Optional[list[str]] = typer.Option(None, "--from-offset",
                                                    help="PARTITION:OFFSET to re-land from (repeatable; other partitions untouched)."),
    to_time: Optional[str] = typer.Option(None, "--to", help="End of the period (messages written before it); default: all that has landed."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the offsets, message counts and retention limit; change nothing."),
    wait: bool = typer.Option(False, "--wait", help="Then follow the re-landing (done by the worker or `consume --drain`) until it is complete."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (and the result) as JSON."),
) -> None:
    """Re-land a period of TABLE from what Kafka still holds: its raw rows are removed and its
    offsets handed back to landing in one warehouse transaction; the running worker (or
    `consume --drain`) lands them again, and the marts keep the newest version of every key."""
    state = ctx.obj
    spec = inputs.table(state.registry, table)
    start = inputs.utc_time("--from", from_time) if from_time else None
    offsets = parse_offsets(from_offset) if from_offset else None
    end = inputs.utc_time("--to", to_time) if to_time else None
    inputs.time_range(start, end)
    engine = open_engine(state.config, state.settings, create="if_configured")
    plan = plan_replay(state.config, state.settings, engine, spec, from_time=start, from_offsets=offsets, to_time=end)
    result = None if dry_run or not plan.todo else apply_replay(engine, spec, plan)
    if as_json:
        out = plan.to_dict() | {"dry_run": dry_run}
        if result is not None:
            out |= {"holes": {str(p): list(h) for p, h in result.holes.items()}}
        print_json(out)
    else:
        title = f"replay {spec.name} {plan.requested}" + (" (dry run: nothing changed)" if dry_run else "")
        print_table(title, ["partition", "from offset", "to offset", "messages (at most)", "raw rows now",
                            "earliest held (offset, UTC)", "landed up to"],
                    [(p.partition, p.from_offset, p.to_offset, p.messages, p.raw_rows,
                      f"{p.log_start}, {p.log_start_time or '-'}" + (" (retention cut the period)" if p.before_retention else ""),
                      p.landed_next - 1) for p in plan.partitions])
        for n in plan.notes:
            typer.echo(f"note: {n}")
        if result is not None:
            typer.echo(f"rewound (replay {plan.replay_id}): the worker (or `ordertrack consume --drain`) lands "
                       f"{sum(p.messages for p in plan.todo)} offset(s) again, each replacing its raw row "
                       f"({sum(p.raw_rows for p in plan.todo)} there now).")
    if wait and result is not None:
        _follow(engine, spec.topic, plan.replay_id)


def _follow(engine, topic: str, replay_id: str) -> None:  # noqa: ANN001 - a WarehouseEngine
    """Show the re-landing's progress until no hole is open on the topic (this replay's, or a later
    one's that merged it); Ctrl-C leaves it to go on without us."""
    holes = replays(engine, topic, open_only=True)
    total = sum(r.to_offset - r.from_offset for r in holes)
    with track(f"replay {replay_id}", total, "offsets") as progress:
        try:
            while holes:
                progress.update(done=total - sum(r.to_offset - r.next_offset for r in holes))
                time.sleep(2)
                holes = replays(engine, topic, open_only=True)
            progress.update(done=total)
        except KeyboardInterrupt:
            typer.echo("stopped following; the re-landing goes on (see `ordertrack status`)", err=True)
