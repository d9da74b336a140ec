"""Entry point of the `ordertrack` console script.

Every command runs inside `run()`, which turns an `OrdertrackError` into one sentence on stderr
and its exit code, so no user ever sees a bare traceback for a known failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click
import typer

from ordertrack import __version__
from ordertrack.cli import (
    backfill_cmd,
    config_cmd,
    connectors_cmd,
    consume_cmd,
    dq_cmd,
    exceptions_cmd,
    generate_cmd,
    health_cmd,
    ledger_cmd,
    maintenance_cmd,
    marts_cmd,
    produce_cmd,
    replay_cmd,
    source_cmd,
    stack_cmd,
    status_cmd,
    topics_cmd,
    watermarks_cmd,
)
from ordertrack.cli.context import CliState
from ordertrack.errors import OrdertrackError, as_service_error
from ordertrack.log import configure_logging

app = typer.Typer(
    name="ordertrack",
    help="Streaming change-data pipeline: kuaisong MySQL tables -> Kafka -> warehouse marts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack_cmd.app, name="stack")
app.add_typer(config_cmd.app, name="config")
app.add_typer(source_cmd.app, name="source")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(watermarks_cmd.app, name="watermarks")
app.add_typer(marts_cmd.app, name="marts")
app.add_typer(dq_cmd.app, name="dq")
app.add_typer(exceptions_cmd.app, name="exceptions")
app.add_typer(ledger_cmd.app, name="ledger")
app.add_typer(connectors_cmd.app, name="connectors")
app.add_typer(maintenance_cmd.scheduler_app, name="scheduler")
app.command("vacuum")(maintenance_cmd.vacuum)
app.command("retention")(maintenance_cmd.retention)
app.command("archive")(maintenance_cmd.archive)
app.command("generate")(generate_cmd.generate)
app.command("produce")(produce_cmd.produce)
app.command("backfill")(backfill_cmd.backfill)
app.command("replay")(replay_cmd.replay)
app.command("consume")(consume_cmd.consume)
app.command("run-once")(consume_cmd.run_once)
app.command("lag")(consume_cmd.lag)
app.command("status")(status_cmd.status)
app.command("health")(health_cmd.health)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ordertrack {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", envvar="ORDERTRACK_CONFIG", help="Pipeline YAML (default: the shipped three-table config)."
    ),
    log_level: str = typer.Option("INFO", "--log-level", envvar="ORDERTRACK_LOG_LEVEL", help="DEBUG, INFO, WARNING, ERROR."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    configure_logging(log_level)
    os.environ["ORDERTRACK_LOG_LEVEL"] = log_level  # the processes a command starts log alike
    ctx.obj = CliState(config_path=config)


def run() -> None:
    try:
        # Outside standalone mode click returns the code of a `typer.Exit` instead of raising it.
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except OrdertrackError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except (click.ClickException, typer.exceptions.TyperException) as exc:
        # typer vendors its own click: a usage error (unknown option, missing value) is one of these
        if not hasattr(exc, "show"):
            raise
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:  # a lost service, or a bug: say so plainly, traceback on request
        if os.environ.get("ORDERTRACK_TRACEBACK"):
            raise
        service = as_service_error(exc)
        if service is not None:
            typer.secho(f"error: {service}", err=True, fg=typer.colors.RED)
            sys.exit(service.exit_code)
        typer.secho(
            f"internal error: {type(exc).__name__}: {exc} (set ORDERTRACK_TRACEBACK=1 to see the traceback)",
            err=True, fg=typer.colors.RED,
        )
        sys.exit(70)


if __name__ == "__main__":
    run()
