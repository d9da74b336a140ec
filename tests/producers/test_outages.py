"""The producer and the workload writer meet outages of MariaDB and Kafka, on the real services.

The shared services are never stopped: the source is taken away by KILLing the process's
connection from an admin session, or, for a longer outage, by running the process in its own
network namespace whose links to MariaDB and Kafka the test cuts (see `netns_relay`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pymysql
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from ordertrack.settings import load_settings
from producers.runner import Producer
from tests.conftest import service_missing
from tests.producers.netns_relay import UnixRelay
from tests.producers.tuning import live_position, retune, set_watermark
from tests.support.kafka_source import consume_all, db_now, high_watermarks, insert
from tests.support.pipeline_env import ORDERTRACK
from tests.support.stderr import Stderr
from tests.support.waits import kill, wait_until

pytestmark = pytest.mark.integration

SPATH = ("order_id", "traceSeq", "pathTime", "event_code", "add_time")


def keys(messages) -> Counter:
    return Counter((k["order_id"], k["traceSeq"]) for k in (orjson.loads(m.key()) for m in messages))



def spath_backlog(env, admin, rows: int) -> tuple[int, int]:
    """`rows` scan events over the two hours before the source's clock minus ten minutes, and the
    watermark at their start: one window `(start, end)` to publish, returned."""
    now = db_now(admin)
    start, end = now - 7200, now - 600
    insert(admin, f"`{env.db}`.uni_tracking_spath", SPATH,
           [(i, 1, start + i % 6000, "ARRIVED_HUB", start) for i in range(1, rows + 1)])
    set_watermark(env, "uni_tracking_spath", start)
    return start, end


def connection_running(admin, text: str) -> int | None:
    """Id of another session whose running statement mentions `text` (e.g. a test's database)."""
    with admin.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                    (f"%{text}%",))
        row = cur.fetchone()
    return None if row is None else int(row[0])


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_killed_source_connection_mid_window_is_ridden_out_and_the_window_redone(make_env, mariadb_admin):
    env = retune(make_env(batch_size=200), window={"max_window_span_minutes": 24 * 60})
    start, end = spath_backlog(env, mariadb_admin, 20_000)
    producer = Producer(env.config, load_settings(), [env.spec("uni_tracking_spath")], max_backoff_seconds=2)
    poller = producer.pollers[0]
    seen: dict[str, object] = {}

    def on_page(page: int, rows: int) -> None:
        if "killed" not in seen and page == 5:
            seen["killed"] = poller._conn.thread_id()
            kill(mariadb_admin, seen["killed"])  # the next page's query finds the connection gone
        elif "killed" in seen and "gauge_during" not in seen:
            # The redone window: the outage was reported and the gauge says so until the cycle ends.
            seen["gauge_during"] = sample("ordertrack_producer_service_up", service="source")

    poller.on_page = on_page
    with capture_logs() as logs, producer:
        result = producer.ride_out(end=end)
    assert result.status == "success", result.tables
    assert seen["gauge_during"] == 0
    assert sample("ordertrack_producer_service_up", service="source") == 1
    events = [e for e in logs if e["event"].startswith("producer.outage")]
    assert [(e["event"], e["log_level"], e["service"]) for e in events] == [
        ("producer.outage.started", "warning", "source"), ("producer.outage.ended", "info", "source")]
    assert "2013" in events[0]["error"] or "1927" in events[0]["error"]
    published = keys(consume_all(env.bootstrap, env.topic("uni_tracking_spath"), timeout=60))
    assert len(published) == 20_000 and max(published.values()) == 1  # the aborted attempt left nothing
    assert live_position(env, "uni_tracking_spath") == end


def test_produce_once_that_loses_the_source_mid_window_exits_4_with_one_sentence(make_env, mariadb_admin):
    env = retune(make_env(batch_size=100), window={"max_window_span_minutes": 24 * 60})
    start, end = spath_backlog(env, mariadb_admin, 150_000)
    proc = env.popen("produce", "--once", "--table", "uni_tracking_spath", "--end-time", str(end))
    victim = wait_until("the producer's page queries", lambda: connection_running(mariadb_admin, env.db), every=0.02)
    kill(mariadb_admin, victim)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    errors = [line for line in err.splitlines() if "error" in line and not line.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith("error: The source database stopped answering"), err
    assert "internal error" not in err and "Traceback" not in err
    assert consume_all(env.bootstrap, env.topic("uni_tracking_spath")) == []  # the window was aborted
    assert live_position(env, "uni_tracking_spath") == start


# -- a longer outage: the producer in its own network namespace --------------------------------------

def _netns_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.fixture
def netns() -> None:
    # Like a missing service: skipped on a developer's machine without it, a failure in CI.
    if not _netns_available():
        service_missing("network namespaces (`unshare -n`, which needs root)")


needs_netns = pytest.mark.usefixtures("netns")


class Isolated:
    """`ordertrack <args>` in its own network namespace, reaching Kafka and MariaDB through relays
    the test can cut (`self.relays["kafka"|"source"]`)."""

    def __init__(self, env, *args: str) -> None:
        settings = load_settings()
        self.sockets = Path(tempfile.mkdtemp(prefix="relay-"))
        kafka_port = int(settings.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
        self.relays = {
            "kafka": UnixRelay(str(self.sockets / "kafka.sock"), ("127.0.0.1", kafka_port)),
            "source": UnixRelay(str(self.sockets / "mysql.sock"), (settings.mysql.host, settings.mysql.port)),
        }
        self.proc = subprocess.Popen(
            ["unshare", "-n", sys.executable, str(Path(__file__).with_name("netns_relay.py")),
             f"{kafka_port}={self.relays['kafka'].path}", f"{settings.mysql.port}={self.relays['source'].path}", "--",
             ORDERTRACK, "--config", str(env.config_path), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env.env_vars, "ORDERTRACK_LOG_FORMAT": "json",
                 "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}", "MYSQL_HOST": "127.0.0.1"},
        )
        self.log = Stderr(self.proc.stderr)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for r in self.relays.values():
            r.close()
        shutil.rmtree(self.sockets, ignore_errors=True)


@needs_netns
def test_produce_once_that_loses_kafka_mid_window_exits_4_and_publishes_nothing(make_env, mariadb_admin):
    env = retune(make_env(batch_size=100), window={"max_window_span_minutes": 24 * 60},
                 kafka={"transaction_timeout_seconds": 10})
    start, end = spath_backlog(env, mariadb_admin, 150_000)
    topic = env.topic("uni_tracking_spath")
    run = Isolated(env, "produce", "--once", "--table", "uni_tracking_spath", "--end-time", str(end))
    try:
        wait_until("the window's first rows", lambda: sum(high_watermarks(env.bootstrap, topic).values()) > 0
                   or run.proc.poll() is not None, every=0.02)
        assert run.proc.poll() is None, "the producer finished before Kafka could be cut"
        run.relays["kafka"].cut()
        run.proc.wait(120)
    finally:
        run.close()
    err = "".join(run.log.lines)
    assert run.proc.returncode == 4, err
    errors = [line for line in run.log.lines if line.startswith("error:")]
    assert len(errors) == 1 and "Kafka stopped answering" in errors[0], err
    assert "internal error" not in err and "Traceback" not in err
    assert consume_all(env.bootstrap, topic) == []
    assert live_position(env, "uni_tracking_spath") == start


@needs_netns
def test_produce_every_rides_through_kafka_and_source_outages(make_env, mariadb_admin):
    env = retune(make_env(buffer_minutes=0), kafka={"transaction_timeout_seconds": 10})
    table = f"`{env.db}`.uni_tracking_spath"
    set_watermark(env, "uni_tracking_spath", db_now(mariadb_admin) - 60)
    metrics_port = 19_400
    run = Isolated(env, "produce", "--table", "uni_tracking_spath", "--every", "1s", "--metrics-port", str(metrics_port))
    proc, relays, log = run.proc, run.relays, run.log
    written: list[int] = []
    stop_writing = threading.Event()

    def write() -> None:  # a steady trickle of scan events at the source's current second
        with pymysql.connect(unix_socket=mariadb_admin.unix_socket, user="root", autocommit=True) as c:
            n = 0
            while not stop_writing.is_set():
                ids = list(range(n + 1, n + 11))
                with c.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} (order_id, traceSeq, pathTime, event_code, add_time) "
                                    "VALUES (%s, 1, UNIX_TIMESTAMP(), 'SCAN', UNIX_TIMESTAMP())", [(i,) for i in ids])
                written.extend(ids)
                n += 10
                stop_writing.wait(0.2)

    def gauge(service: str) -> float | None:
        # The metrics port is inside the namespace: read it from there.
        r = subprocess.run(["nsenter", "-t", str(proc.pid), "-n", sys.executable, "-c",
                            f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{metrics_port}/metrics', timeout=5).read().decode())"],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.startswith(f'ordertrack_producer_service_up{{service="{service}"}}'):
                return float(line.split()[-1])
        return None

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        topic = env.topic("uni_tracking_spath")
        wait_until("the first rows in Kafka", lambda: consume_all(env.bootstrap, topic), timeout=120, every=0.5)
        for service in ("kafka", "source"):
            relays[service].cut()
            wait_until(f"the {service} outage to be noticed",
                       lambda: log.events("producer.outage.started", service=service), timeout=120, every=0.5,
                       context=lambda: "".join(log.lines[-40:]))
            assert gauge(service) == 0
            time.sleep(3)  # the outage goes on: retries with backoff, still one warning
            relays[service].restore()
            wait_until(f"the end of the {service} outage",
                       lambda: log.events("producer.outage.ended", service=service), timeout=120, every=0.5,
                       context=lambda: "".join(log.lines[-40:]))
            assert gauge(service) == 1
            assert proc.poll() is None, "".join(log.lines)
        stop_writing.set()
        writer.join(10)
        expected = set(written)

        def all_published() -> Counter | None:
            ids = Counter(orjson.loads(m.key())["order_id"] for m in consume_all(env.bootstrap, topic, timeout=60))
            return ids if set(ids) >= expected else None

        published = wait_until("every written row in Kafka", all_published, timeout=180, every=1)
        assert max(published.values()) == 1, [k for k, n in published.items() if n > 1][:10]
        assert set(published) == expected
        assert len(log.events("producer.outage.started")) == 2, "".join(log.lines)
        assert len(log.events("producer.outage.ended")) == 2
    finally:
        stop_writing.set()
        run.close()
    assert proc.returncode in (0, 130), "".join(log.lines)
    assert not [line for line in log.lines if "internal error" in line or "Traceback" in line]
