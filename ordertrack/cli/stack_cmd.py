"""`ordertrack stack up | down | status`."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import typer

from ordertrack.cli.output import print_json, print_table
from ordertrack.stack import Stack
from ordertrack.stack.docker import BASE_IMAGE, DockerEngine
from ordertrack.stack.layout import StackLayout
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


docker_app = typer.Typer(help="A Docker engine for the compose stack (docker-compose.yml): found running, or started "
                              "here as dockerd (vfs, no iptables) with its layers in the user's cache.",
                         no_args_is_help=True)
app.add_typer(docker_app, name="docker")


def _show_engine(status: ServiceStatus, as_json: bool, print_host: bool) -> None:
    if print_host:
        typer.echo(status.address)
    elif as_json:
        print_json(asdict(status))
    else:
        print_table("docker engine", ["DOCKER_HOST", "state", "pid", "detail"],
                    [(status.address, status.state, status.pid, status.detail)])


@docker_app.command("up")
def docker_up(
    base_image: bool = typer.Option(True, "--base-image/--no-base-image",
                                    help=f"Import {BASE_IMAGE} (debootstrap, made once into the cache) if missing."),
    print_host: bool = typer.Option(False, "--print-host", help="Print only the DOCKER_HOST to use (for scripts)."),
    as_json: bool = JsonOpt,
) -> None:
    """Use the engine that answers (DOCKER_HOST, /var/run/docker.sock) or start one; make the base image."""
    engine = DockerEngine(StackLayout.from_env())
    status = engine.up()
    if base_image:
        engine.ensure_base_image(status.address)
    _show_engine(status, as_json, print_host)


@docker_app.command("down")
def docker_down(as_json: bool = JsonOpt) -> None:
    """Stop the dockerd `stack docker up` started (by its pid); an engine found running is left alone."""
    _show_engine(DockerEngine(StackLayout.from_env()).down(), as_json, False)


@docker_app.command("status")
def docker_status(as_json: bool = JsonOpt) -> None:
    """Which engine answers; exit 1 if none."""
    status = DockerEngine(StackLayout.from_env()).status()
    _show_engine(status, as_json, False)
    if status.state != "running":
        raise typer.Exit(1)


compose_app = typer.Typer(help="The docker-compose stack (docker-compose.yml: Kafka, MariaDB, S3 and the pipeline's "
                               "roles) on the engine `stack docker up` finds or starts. Run from the repository.",
                          no_args_is_help=True)
app.add_typer(compose_app, name="compose")


@compose_app.command("demo")
def compose_demo(
    produce_every: str = typer.Option("10s", "--produce-every", help="The producer's cycle in the demo (15m by default "
                                      "in docker-compose.yml)."),
    history_hours: float = typer.Option(1.5, "--history-hours", min=0.05, max=1.8,
                                        help="Hours of generated history: at most the producer's lookback_minutes "
                                             "(120), as far back as its first window reaches."),
) -> None:
    """Build the images, start Kafka, MariaDB and S3, generate a history, start the pipeline's roles,
    wait until the marts hold the history, print the source's and the marts' counts and `status`.
    The stack keeps running; `make compose-down` removes it."""
    from ordertrack.stack.compose import INFRASTRUCTURE, ComposeStack

    stack = ComposeStack.prepare(Path.cwd(), extra_env={"ORDERTRACK_PRODUCE_EVERY": produce_every})
    typer.echo(f"docker engine {stack.docker_host}; settings {stack.env_file}; building the images")
    typer.echo(f"images built in {stack.build():.0f}s; starting Kafka, MariaDB and S3")
    stack.up(*INFRASTRUCTURE)
    stack.wait_healthy(INFRASTRUCTURE)
    # The history ends before the producer's buffer_minutes (5): all of it is published at once.
    until = (datetime.now(timezone.utc) - timedelta(minutes=6)).strftime("%Y-%m-%d %H:%M:%S")
    typer.echo(f"generating {history_hours} hours of history up to {until} UTC")
    stack.compose("run", "--rm", "generate", "generate", "--history-days", f"{history_hours / 24:.4f}",
                  "--until", until, "--orders-per-minute", "30", "--seed", "42", capture=False)
    typer.echo("starting topics, producer, worker, scheduler")
    stack.up()
    stack.wait_healthy()
    typer.echo(f"the marts caught up with the source in {stack.wait_caught_up():.0f}s")
    for argv in (("source", "counts"), ("marts", "counts"), ("status",)):
        stack.ordertrack(*argv, check=False, capture_output=False)
    typer.echo("the stack keeps running (scripts: `ordertrack stack docker up --print-host` gives DOCKER_HOST, "
               f"project {stack.project}, env file {stack.env_file}); `make compose-down` removes it")


@compose_app.command("down")
def compose_down(
    keep_engine: bool = typer.Option(False, "--keep-engine", help="Leave running the dockerd `stack docker up` started."),
) -> None:
    """Remove the compose stack's containers, network and volumes, and stop the engine if ordertrack
    started it. The images stay in the engine's cache (the next build reuses them)."""
    from ordertrack.stack.compose import ComposeStack

    layout = StackLayout.from_env()
    stack = ComposeStack.prepare(Path.cwd(), layout=layout, base_image=False)
    stack.down()
    stack.prune_images()
    left = {k: v for k, v in stack.leftovers().items() if v}
    if left:
        typer.echo(f"left behind: {left}", err=True)
        raise typer.Exit(1)
    typer.echo("compose stack removed")
    engine = DockerEngine(layout)
    if not keep_engine and engine.running_pid() is not None:
        if engine.idle():
            engine.down()
            typer.echo("docker engine stopped")
        else:
            typer.echo("docker engine left running: it holds other containers")
