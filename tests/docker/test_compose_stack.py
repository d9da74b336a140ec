"""The docker-compose stack runs the whole pipeline on a real Docker engine.

Build the images (from the local debootstrap base), `up` the stack, generate a workload, wait
until the marts hold it, reconcile source and marts with `ordertrack dq reconcile` in a container
of its own; SIGKILL the worker container while a live workload runs, start it again, check again;
then tear down and find no container, network or volume of the project left. The engine is
started for the test when none answers, and stopped after only if the test started it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ordertrack.config import load_pipeline_config
from ordertrack.errors import OrdertrackError
from ordertrack.resources import resource_text
from ordertrack.stack.compose import INFRASTRUCTURE, ComposeStack, write_env_file
from ordertrack.stack.docker import DockerEngine
from ordertrack.stack.layout import StackLayout
from tests.conftest import service_missing

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath")
RAW_OFFSETS = """
import json, duckdb
from ordertrack.config import load_pipeline_config
from ordertrack.tables import TableRegistry
con = duckdb.connect("/var/lib/ordertrack/warehouse/warehouse.duckdb", read_only=True)
print(json.dumps({s.name: con.execute(
    f'SELECT COUNT(*), COUNT(DISTINCT (_kafka_partition, _kafka_offset)) FROM "{s.raw_schema}"."{s.raw_table}"'
).fetchone() for s in TableRegistry(load_pipeline_config())}))
"""
PORT_VARS = ("ORDERTRACK_COMPOSE_KAFKA_PORT", "ORDERTRACK_COMPOSE_MARIADB_PORT", "ORDERTRACK_COMPOSE_S3_PORT",
             "ORDERTRACK_COMPOSE_PRODUCER_METRICS_PORT", "ORDERTRACK_COMPOSE_WORKER_METRICS_PORT",
             "ORDERTRACK_COMPOSE_SCHEDULER_METRICS_PORT")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    layout = StackLayout.from_env()
    engine = DockerEngine(layout)
    started_here = engine.status().host == ""
    folder = tmp_path_factory.mktemp("compose")
    # The shipped pipeline YAML with no buffer behind the source clock, so a live workload's rows
    # are published within a producer cycle (5 s) instead of 5 minutes later.
    (folder / "config").mkdir()
    shipped = resource_text("pipeline.yaml")
    assert "  buffer_minutes: 5\n" in shipped
    (folder / "config" / "pipeline.yaml").write_text(shipped.replace("  buffer_minutes: 5\n", "  buffer_minutes: 0\n"))
    assert load_pipeline_config(folder / "config" / "pipeline.yaml").window_settings.buffer_minutes == 0
    (folder / "config").chmod(0o755)  # mounted into containers that run as the user ordertrack
    (folder / "config" / "pipeline.yaml").chmod(0o644)
    write_env_file(ROOT / "docker" / "compose.env.example", folder / "compose.env")
    with open(folder / "compose.env", "a") as f:
        f.write("ORDERTRACK_CONFIG=/etc/ordertrack/pipeline.yaml\n")
    try:
        extra = dict(zip(PORT_VARS, map(str, _free_ports(len(PORT_VARS)))))
        extra.update(ORDERTRACK_PRODUCE_EVERY="5s", ORDERTRACK_CONFIG_DIR=str(folder / "config"))
        stack = ComposeStack.prepare(ROOT, project="ordertrack-test", layout=layout, extra_env=extra,
                                     env_file=folder / "compose.env")
    except OrdertrackError as exc:
        service_missing(f"a Docker engine ({exc})")
    stack.down()  # what an interrupted earlier run left
    try:
        yield stack
    finally:
        stack.down()
        stack.prune_images()
        if started_here:
            engine.down()


def _reconcile_in_own_container(stack: ComposeStack) -> dict[str, dict]:
    """`dq reconcile --json` per table, each in a new `cli` container; every one must be clean."""
    reports = {}
    for table in TABLES:
        out = stack.ordertrack("dq", "reconcile", "--table", table, "--json", new_container=True, check=False)
        assert out.returncode == 0, f"dq reconcile {table} exited {out.returncode}: {out.stdout[-2000:]} {out.stderr[-2000:]}"
        reports[table] = json.loads(out.stdout)
    return reports


def _held(stack: ComposeStack) -> dict[str, tuple[int, int]]:
    source = {r["table"]: int(r["rows"]) for r in stack.ordertrack_json("source", "counts")}
    marts = stack.ordertrack_json("marts", "counts")
    return {t: (source[t], int(marts[t]["mart_rows"])) for t in TABLES}


def test_compose_stack_runs_the_pipeline_and_survives_a_worker_kill(compose_stack: ComposeStack) -> None:
    stack = compose_stack
    times: dict[str, float] = {}
    t0 = time.monotonic()
    times["build"] = stack.build()

    t = time.monotonic()
    stack.up(*INFRASTRUCTURE)
    stack.wait_healthy(INFRASTRUCTURE)
    # History first: the producer's first window reaches lookback_minutes (120) back, no further.
    stack.compose("run", "--rm", "generate", "generate", "--history-days", "0.06", "--orders-per-minute", "40",
                  "--seed", "7")
    stack.up()
    stack.wait_healthy(timeout=420)
    times["up until healthy"] = time.monotonic() - t
    times["first workload landed"] = stack.wait_caught_up(timeout=600)
    first = _held(stack)
    assert all(src > 0 and src == mart for src, mart in first.values()), first
    clean = _reconcile_in_own_container(stack)
    assert all(r["clean"] and r["counts"] == {"missing": 0, "extra": 0, "stale": 0} for r in clean.values()), clean

    # A live workload in its own container while the worker is SIGKILLed mid-run and started again.
    worker = stack.container("worker")
    stack.compose("run", "-d", "--name", "ordertrack-test-live", "generate", "generate", "--live", "--duration", "40s",
                  "--orders-per-minute", "600", "--seed", "8")
    try:
        deadline = time.monotonic() + 60
        while stack.behind() == {} and time.monotonic() < deadline:  # wait until the worker has work in hand
            time.sleep(1)
        assert stack.docker("kill", "--signal", "KILL", worker).returncode == 0
        state = stack.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", worker).stdout.split()
        assert state == ["exited", "137"], state
        t = time.monotonic()
        stack.compose("start", "worker")
        stack.wait_healthy(["worker"], timeout=300)
        times["worker restart until healthy"] = time.monotonic() - t
        waited = stack.docker("wait", "ordertrack-test-live", timeout=300)
        assert waited.stdout.strip() == "0", waited
    finally:
        stack.docker("rm", "-f", "ordertrack-test-live")

    times["after the kill, landed"] = stack.wait_caught_up(timeout=600)
    second = _held(stack)
    assert all(second[t][0] > first[t][0] for t in ("ecs_order_info", "uni_tracking_spath")), (first, second)
    assert all(src == mart for src, mart in second.values()), second
    clean = _reconcile_in_own_container(stack)
    assert all(r["clean"] and r["counts"] == {"missing": 0, "extra": 0, "stale": 0} for r in clean.values()), clean
    # Nothing landed twice across the kill: each (partition, offset) once in every raw table. Read
    # with DuckDB itself once the writers stopped (a second process cannot open a file in use).
    stack.compose("stop", "producer", "worker", "scheduler", timeout=300)
    out = stack.compose("run", "--rm", "--no-deps", "--entrypoint", "python", "cli", "-c", RAW_OFFSETS)
    raw = json.loads(out.stdout)
    assert all(rows > 0 and rows == distinct for rows, distinct in raw.values()), raw

    t = time.monotonic()
    stack.down()
    times["down"] = time.monotonic() - t
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
    times["total"] = time.monotonic() - t0
    print("compose stack test: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))
