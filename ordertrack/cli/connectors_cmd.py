"""`ordertrack connectors render | apply | status | pause | resume | restart | delete`: the Debezium
connector of the `cdc_strategy: debezium` tables, through Kafka Connect's REST API."""

from __future__ import annotations

import time
from dataclasses import asdict

import typer

from connectors.connect_api import ConnectorFailed
from ordertrack.cli.output import print_json, print_table
from ordertrack.errors import ConfigError

app = typer.Typer(help="The Debezium connector (binlog CDC) in Kafka Connect: apply, inspect, pause, resume, restart, delete.",
                  no_args_is_help=True)

JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def _api(state):  # noqa: ANN001 - CliState
    from connectors.connect_api import ConnectApi

    return ConnectApi(state.settings.connect.url)


def _desired(state) -> dict[str, str]:  # noqa: ANN001
    from connectors.debezium import connector_config

    return connector_config(state.config, state.settings)


@app.command()
def render(ctx: typer.Context) -> None:
    """Print the connector configuration the pipeline YAML makes (nothing is sent)."""
    print_json({"name": ctx.obj.config.cdc.connector, "config": _desired(ctx.obj)})


@app.command()
def apply(
    ctx: typer.Context,
    wait: float = typer.Option(60.0, "--wait", min=0, help="Seconds to wait for the connector to settle (0: do not wait)."),
    as_json: bool = JsonOpt,
) -> None:
    """Create or update the connector from the pipeline YAML; show what changed. Checks the source
    first when it can log in as the CDC account, lets the connector validate its own settings,
    then waits until it runs (exit 0) or fails (exit 1, with the cause). Idempotent."""
    from connectors.debezium import MYSQL_CONNECTOR_CLASS
    from connectors.preflight import source_problems

    state = ctx.obj
    name = state.config.cdc.connector
    desired = _desired(state)
    known = state.settings.connect.mysql_password
    checked_source = known is not None and known.get_secret_value() != ""
    problems = source_problems(state.settings, state.config.source.database, state.config.cdc.adapter == "mariadb") \
        if checked_source else []
    api = _api(state)
    if not problems:
        problems = [f"{setting}: {message}" for setting, message in api.validate(MYSQL_CONNECTOR_CLASS, {"name": name, **desired})]
    if problems:
        raise ConfigError(f"The connector {name} was not applied: " + " ".join(_sentence(p) for p in problems))
    current = api.config(name) or {}
    current.pop("name", None)
    changed = {k: {"from": current.get(k), "to": v} for k, v in desired.items() if current.get(k) != v}
    removed = sorted(set(current) - set(desired))
    created = False
    if changed or removed:
        created = _when_not_busy(lambda: api.put_config(name, desired))
    changed = {k: _masked(k, v) for k, v in changed.items()}
    status = _settle(api, name, wait) if wait else api.status(name)
    out = {"connector": name, "created": created, "changed": changed, "removed": removed,
           "source_checked": checked_source, "state": status.state,
           "tasks": [t.get("state") for t in status.tasks], "error": status.trace if status.failed else None}
    if as_json:
        print_json(out)
    else:
        what = "created" if created else ("updated" if changed or removed else "unchanged")
        typer.echo(f"connector {name}: {what}; state {status.state or 'unknown'}"
                   f" (tasks: {', '.join(out['tasks']) or 'none yet'})")
        for k, v in changed.items():
            if not created:
                typer.echo(f"  {k}: {v['from']!r} -> {v['to']!r}")
        for k in removed:
            typer.echo(f"  {k}: removed")
    if status.failed:
        raise ConnectorFailed(f"The connector {name} failed: {status.trace}")
    if wait and not status.running:
        raise ConnectorFailed(f"The connector {name} was applied but did not settle within {wait:.0f}s (state "
                              f"{status.state or 'unknown'}); see `ordertrack connectors status`.")


def _when_not_busy(fn):  # noqa: ANN001, ANN202
    """Connect answers 409 while its workers rebalance: a few tries, then the sentence (exit 4)."""
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    from connectors.connect_api import ConnectBusy

    return retry(retry=retry_if_exception_type(ConnectBusy), stop=stop_after_attempt(5),
                 wait=wait_exponential(min=1, max=8), reraise=True)(fn)()


def _masked(key: str, change: dict) -> dict:
    """A password setting is a provider reference by design; should it ever hold a value, the
    diff never shows it."""
    if "password" not in key:
        return change
    return {k: (v if v is None or str(v).startswith("${") else "(hidden)") for k, v in change.items()}


def _settle(api, name: str, wait: float):  # noqa: ANN001
    """Poll until the connector and its task have run for 5 s in a row, or failed, or `wait` is over."""
    deadline = time.monotonic() + wait
    running_since: float | None = None
    status = api.status(name)
    while time.monotonic() < deadline:
        status = api.status(name)
        if status.failed:
            return status
        if status.running:
            running_since = running_since or time.monotonic()
            if time.monotonic() - running_since >= 5:
                return status
        else:
            running_since = None
        time.sleep(0.5)
    return status


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else text + "."


@app.command()
def status(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Connector and task state, the cause of a failure, and where in the binlog it stands. Exit 1
    when it is missing or failed."""
    state = ctx.obj
    name = state.config.cdc.connector
    api = _api(state)
    st = api.status(name)
    offsets = api.offsets(name) if st.exists else []
    position = next((o.get("offset") for o in offsets if isinstance(o.get("offset"), dict)), None)
    from connectors.preflight import behind, binlog_head

    head = binlog_head(state.settings) if st.exists else None
    lag = behind(head, position)
    if as_json:
        print_json({**asdict(st), "failed": st.failed, "running": st.running, "binlog_position": position,
                    "binlog_head": None if head is None else {"file": head[0], "pos": head[1]}, "behind": lag})
    else:
        tasks = ", ".join(f"{t.get('id')}: {t.get('state')}" for t in st.tasks) or "-"
        where = f"{position.get('file')}:{position.get('pos')}" if position else "-"
        if lag is None:
            gap = "unknown (needs CDC_MYSQL_PASSWORD here)" if st.exists and head is None else "-"
        else:
            gap = f"{lag['bytes']:,} bytes" if lag["files"] == 0 else f"{lag['files']} binlog file(s)"
        print_table(f"connector {name}", ["state", "tasks", "binlog position", "behind the binlog", "error"],
                    [(st.state if st.exists else "missing (ordertrack connectors apply)", tasks, where, gap,
                      st.trace or "")])
    if not st.exists or st.failed:
        raise typer.Exit(1)


def _action(verb: str):  # noqa: ANN202
    def command(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
        state = ctx.obj
        name = state.config.cdc.connector
        api = _api(state)
        if not api.status(name).exists:
            raise ConfigError(f"There is no connector {name} in Kafka Connect at {api.url}: run `ordertrack connectors apply`.")
        getattr(api, verb)(name)
        if as_json:
            print_json({"connector": name, "requested": verb})
        else:
            typer.echo(f"connector {name}: {verb} requested")

    command.__doc__ = {"pause": "Pause the connector (it keeps its binlog position).",
                       "resume": "Resume a paused connector.",
                       "restart": "Restart the connector and its task (after a failure is fixed)."}[verb]
    return command


app.command("pause")(_action("pause"))
app.command("resume")(_action("resume"))
app.command("restart")(_action("restart"))


@app.command()
def delete(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Remove the connector from Kafka Connect (its binlog position stays in Connect's offsets topic,
    so applying it again resumes where it stood)."""
    state = ctx.obj
    name = state.config.cdc.connector
    gone = _api(state).delete(name)
    if as_json:
        print_json({"connector": name, "deleted": gone})
    else:
        typer.echo(f"connector {name}: {'deleted' if gone else 'was not there'}")
