"""`ordertrack stack up | down | status`."""

from __future__ import annotations

from dataclasses import asdict

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.stack import Stack
from ordertrack.stack.service import ServiceStatus

app = typer.Typer(help="Fetch, start and stop the local stack (Kafka 4 KRaft, MariaDB, PostgreSQL, moto S3; Kafka Connect on request) "
                       "under .stack/.", no_args_is_help=True)

JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def _show(statuses: list[ServiceStatus], as_json: bool, env_file: str) -> None:
    if as_json:
        print_json({"services": [asdict(s) for s in statuses], "env_file": env_file})
        return
    print_table(
        "local stack",
        ["service", "address", "state", "pid", "detail"],
        [(s.name, s.address, s.state, s.pid, s.detail) for s in statuses],
    )


@app.command()
def up(
    connect: bool = typer.Option(False, "--connect", envvar="ORDERTRACK_STACK_CONNECT",
                                 help="Also run Kafka Connect with Debezium (binlog CDC)."),
    postgres: bool = typer.Option(True, "--postgres/--no-postgres", envvar="ORDERTRACK_STACK_POSTGRES",
                                  help="Run PostgreSQL (the PostgreSQL warehouse engine and its tests)."),
    secure: bool = typer.Option(False, "--secure", envvar="ORDERTRACK_STACK_SECURE",
                                help="Secured: Kafka SASL_SSL (SCRAM) and mutual-TLS listeners with ACLs, MariaDB TLS "
                                     "(certificates under <state>/tls/; kept on later `up`s)."),
    as_json: bool = JsonOpt,
) -> None:
    """Fetch what is missing, start what is stopped, wait until every service is healthy."""
    stack = Stack()
    statuses = stack.up(connect=connect, postgres=postgres, secure=secure)
    _show(statuses, as_json, str(stack.layout.env_file))
    if not as_json:
        typer.echo(f"connection settings written to {stack.layout.env_file}")


@app.command()
def down(as_json: bool = JsonOpt) -> None:
    """Stop the processes `up` started (by their pids)."""
    stack = Stack()
    _show(stack.down(), as_json, str(stack.layout.env_file))


@app.command()
def status(as_json: bool = JsonOpt) -> None:
    """Show each service, its address and its state; exit 1 if any is not running."""
    stack = Stack()
    statuses = stack.status()
    _show(statuses, as_json, str(stack.layout.env_file))
    if any(s.state not in ("running", "off") for s in statuses):
        raise typer.Exit(1)
