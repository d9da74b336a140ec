"""The docker-compose stack runs the whole pipeline on a real Docker engine.

Build the images (from the local debootstrap base), `up` the stack, generate a workload, wait
until the marts hold it, reconcile source and marts with `ordertrack dq reconcile` in a container
of its own; SIGKILL the worker container while a live workload runs, start it again, check again;
then tear down and find no container, network or volume of the project left. The engine is
started for the test when none answers, and stopped after only if the test started it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ordertrack.config import load_pipeline_config
from ordertrack.errors import OrdertrackError
from ordertrack.resources import resource_text
from ordertrack.stack.compose import INFRASTRUCTURE, ComposeStack, write_env_file
from ordertrack.stack.docker import DockerEngine
from ordertrack.stack.layout import StackLayout
from tests.conftest import service_missing

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIVE = "ordertrack-test-live"
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
S3_ROUND_TRIP = """
import boto3
s3 = boto3.client("s3")  # AWS_ENDPOINT_URL_S3 and the keys come from the env file
s3.create_bucket(Bucket="ordertrack-test")
s3.put_object(Bucket="ordertrack-test", Key="watermarks/test.json", Body=b"{}")
body = s3.get_object(Bucket="ordertrack-test", Key="watermarks/test.json")["Body"].read()
print("watermarks/test.json", len(body))
"""
PORT_VARS = ("ORDERTRACK_COMPOSE_KAFKA_PORT", "ORDERTRACK_COMPOSE_MARIADB_PORT", "ORDERTRACK_COMPOSE_S3_PORT",
             "ORDERTRACK_COMPOSE_PRODUCER_METRICS_PORT", "ORDERTRACK_COMPOSE_WORKER_METRICS_PORT",
             "ORDERTRACK_COMPOSE_SCHEDULER_METRICS_PORT", "ORDERTRACK_COMPOSE_CONNECT_PORT")


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
    started_here = engine.status().state == "stopped"
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
    extra = dict(zip(PORT_VARS, map(str, _free_ports(len(PORT_VARS)))))
    extra.update(ORDERTRACK_PRODUCE_EVERY="5s", ORDERTRACK_CONFIG_DIR=str(folder / "config"))
    try:
        try:
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
    finally:
        # An engine this test started is stopped, unless something else now runs on it.
        if started_here and engine.idle():
            engine.down()


def _reconcile_in_own_container(stack: ComposeStack) -> dict[str, dict]:
    """`dq reconcile --json` per table, each in a new `cli` container; every one must be clean."""
    reports = {}
    for table in TABLES:
        out = stack.ordertrack("dq", "reconcile", "--table", table, "--json", new_container=True, check=False)
        assert out.returncode == 0, f"dq reconcile {table} exited {out.returncode}: {out.stdout[-2000:]} {out.stderr[-2000:]}"
        reports[table] = json.loads(out.stdout)
    return reports


def _rows_landed(stack: ComposeStack) -> float:
    """The worker's ordertrack_rows_landed counter, summed over tables, from its published metrics port."""
    port = dict(stack.extra_env)["ORDERTRACK_COMPOSE_WORKER_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "ordertrack_rows_landed_total")


def test_compose_stack_runs_the_pipeline_and_survives_a_worker_kill(compose_stack: ComposeStack) -> None:
    stack = compose_stack
    times: dict[str, float] = {}
    t0 = time.monotonic()
    times["build"] = stack.build()

    volumes_before = set(stack.docker("volume", "ls", "-q").stdout.split())
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
    first = stack.held()
    assert all(src > 0 and src == mart for src, mart in first.values()), first
    clean = _reconcile_in_own_container(stack)
    assert all(r["clean"] and r["counts"] == {"missing": 0, "extra": 0, "stale": 0} for r in clean.values()), clean

    # A live workload in its own container; once the worker lands its rows, the worker's process
    # is SIGKILLed (a crash) and the container's restart policy must bring it back by itself.
    landed_before = _rows_landed(stack)
    stack.compose("run", "-d", "--name", LIVE, "generate", "generate", "--live", "--duration", "40s",
                  "--orders-per-minute", "600", "--seed", "8")
    try:
        deadline = time.monotonic() + 120
        while _rows_landed(stack) <= landed_before:
            assert time.monotonic() < deadline, "the worker landed none of the live workload's rows within 120s"
            time.sleep(0.5)
        worker = stack.container("worker")
        pid, restarts = stack.docker("inspect", "-f", "{{.State.Pid}} {{.RestartCount}}", worker).stdout.split()
        t = time.monotonic()
        os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 120
        while int(stack.docker("inspect", "-f", "{{.RestartCount}}", worker).stdout.strip() or 0) <= int(restarts):
            assert time.monotonic() < deadline, "the worker container was not restarted within 120s"
            time.sleep(0.5)
        stack.wait_healthy(["worker"], timeout=300)
        times["worker crash until healthy again"] = time.monotonic() - t
        waited = stack.docker("wait", LIVE, timeout=300)
        assert waited.stdout.strip() == "0", waited
    finally:
        stack.docker("rm", "-f", LIVE)

    times["after the kill, landed"] = stack.wait_caught_up(timeout=600)
    second = stack.held()
    # Orders and tracking rows grow with the live workload; scan events (one every few hours per
    # parcel on average) may not in 40 seconds.
    assert second["ecs_order_info"][0] > first["ecs_order_info"][0], (first, second)
    assert all(src == mart for src, mart in second.values()), second
    clean = _reconcile_in_own_container(stack)
    assert all(r["clean"] and r["counts"] == {"missing": 0, "extra": 0, "stale": 0} for r in clean.values()), clean
    # Nothing landed twice across the kill: each (partition, offset) once in every raw table. Read
    # with DuckDB itself once the writers stopped (a second process cannot open a file in use).
    stack.compose("stop", "producer", "worker", "scheduler", timeout=300)
    out = stack.compose("run", "--rm", "--no-deps", "--entrypoint", "python", "cli", "-c", RAW_OFFSETS)
    raw = json.loads(out.stdout)
    assert all(rows > 0 and rows == distinct for rows, distinct in raw.values()), raw

    # The S3 endpoint, from a pipeline container through the compose network.
    out = stack.compose("run", "--rm", "--no-deps", "--entrypoint", "python", "cli", "-c", S3_ROUND_TRIP)
    assert out.stdout.strip().endswith("watermarks/test.json 2"), out.stdout

    # Kafka Connect with Debezium (profile cdc): its image builds and the worker lists the plugin.
    t = time.monotonic()
    stack.build("connect", profiles=("cdc",))
    stack.compose("--profile", "cdc", "up", "-d", "connect", timeout=600)
    stack.wait_healthy(["connect"], timeout=300)
    times["connect built and healthy"] = time.monotonic() - t

    t = time.monotonic()
    stack.down()
    times["down"] = time.monotonic() - t
    assert stack.leftovers() == {"containers": [], "networks": [], "volumes": []}
    assert set(stack.docker("volume", "ls", "-q").stdout.split()) <= volumes_before  # no anonymous volume either
    times["total"] = time.monotonic() - t0
    print("compose stack test: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))
