"""`ordertrack stack up | down | status` as a user runs them, on real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ordertrack.stack.envfile import read_env
from ordertrack.stack.layout import StackLayout

pytestmark = pytest.mark.integration

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([ORDERTRACK, *args], capture_output=True, text=True, env=env, timeout=timeout)


def processes_mentioning(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
                cwd = os.readlink(d / "cwd")
            except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
                continue
            if (marker in cmd or cwd.startswith(marker)) and state != "Z" and int(d.name) != os.getpid():
                pids.append(int(d.name))
    return pids


def test_up_twice_keeps_the_running_services(kafka_bootstrap, mariadb_admin):
    env_file = StackLayout.from_env().env_file
    first = cli("stack", "up", "--json")
    assert first.returncode == 0, first.stderr
    url = read_env(env_file)["POSTGRES_WAREHOUSE_URL"]
    second = cli("stack", "up", "--json")
    assert second.returncode == 0, second.stderr
    assert read_env(env_file)["POSTGRES_WAREHOUSE_URL"] == url  # its password is kept
    a, b = json.loads(first.stdout)["services"], json.loads(second.stdout)["services"]
    states = {s["name"]: s["state"] for s in b}
    # Kafka Connect runs where it was asked for (`make test` does), and is `off` otherwise.
    assert states == {"mariadb": "running", "postgres": "running", "kafka": "running", "s3": "running",
                      "connect": "running" if a[-1]["state"] == "running" else "off"}
    assert [s["pid"] for s in a] == [s["pid"] for s in b]
    status = cli("stack", "status", "--json")
    assert status.returncode == 0
    layout = StackLayout.from_env()
    assert {s["name"]: s["address"] for s in json.loads(status.stdout)["services"]} == {
        "mariadb": f"127.0.0.1:{layout.mariadb_port}",
        "postgres": f"127.0.0.1:{layout.postgres_port}",
        "kafka": f"127.0.0.1:{layout.kafka_port}",  # the plaintext listener (secured stack: the admin's)
        "s3": f"http://127.0.0.1:{layout.moto_port}",
        "connect": f"http://127.0.0.1:{layout.connect_port}",
    }


@pytest.fixture
def isolated_env() -> dict[str, str]:
    """A second stack on other ports, sharing only the fetched-jar cache of the main one."""
    # Not under pytest's temp folder: that is mode 0700, and as root PostgreSQL runs as the
    # `postgres` user, which must be able to reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="ordertrack-stk-"))
    root.chmod(0o755)
    env = dict(os.environ)
    env.update(
        ORDERTRACK_STATE_DIR=str(root / "state"),
        ORDERTRACK_CACHE_DIR=str(StackLayout.from_env().cache),
        ORDERTRACK_KAFKA_PORT="19092",
        ORDERTRACK_KAFKA_CONTROLLER_PORT="19093",
        ORDERTRACK_KAFKA_SECURE_PORT="19094",
        ORDERTRACK_KAFKA_MTLS_PORT="19095",
        ORDERTRACK_MARIADB_PORT="13307",
        ORDERTRACK_POSTGRES_PORT="15433",
        ORDERTRACK_MOTO_PORT="15055",
        ORDERTRACK_CONNECT_PORT="18083",
    )
    yield env
    cli("stack", "down", env=env)  # never leave a stray stack, even when the test failed
    shutil.rmtree(root, ignore_errors=True)


def test_isolated_stack_up_then_down_leaves_no_process(isolated_env):
    state = isolated_env["ORDERTRACK_STATE_DIR"]
    up = cli("stack", "up", "--json", env=isolated_env)
    assert up.returncode == 0, up.stderr[-2000:]
    services = json.loads(up.stdout)["services"]
    assert {s["name"]: s["state"] for s in services} == {"mariadb": "running", "postgres": "running",
                                                         "kafka": "running", "s3": "running",
                                                         "connect": "off"}  # not asked for
    assert {s["name"]: s["address"] for s in services} == {
        "mariadb": "127.0.0.1:13307", "postgres": "127.0.0.1:15433", "kafka": "127.0.0.1:19092",
        "s3": "http://127.0.0.1:15055",
        "connect": "http://127.0.0.1:18083",
    }
    started = {s["pid"] for s in services if s["pid"] is not None}
    assert started <= set(processes_mentioning(state))
    env_file = Path(state) / ".env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092" in env_file.read_text()
    # A plain stack says so: no TLS anywhere (the clients' defaults would ask for it).
    assert "@127.0.0.1:15433/warehouse?sslmode=disable\n" in env_file.read_text()
    assert "KAFKA_SECURITY_PROTOCOL=PLAINTEXT\n" in env_file.read_text()
    assert "MYSQL_SSL_MODE=disabled\n" in env_file.read_text()
    assert not (Path(state) / "tls").exists()
    # The pid `up` recorded is the postmaster's own (as root too: setpriv execs, no wrapper between).
    postgres_pid = next(s["pid"] for s in services if s["name"] == "postgres")
    assert (Path(state) / "postgres" / "data" / "postmaster.pid").read_text().split()[0] == str(postgres_pid)

    down = cli("stack", "down", "--json", env=isolated_env)
    assert down.returncode == 0, down.stderr
    assert {s["name"]: s["state"] for s in json.loads(down.stdout)["services"]} == {
        "mariadb": "stopped", "postgres": "stopped", "kafka": "stopped", "s3": "stopped", "connect": "off"}
    assert processes_mentioning(state) == []
    status = cli("stack", "status", env=isolated_env)
    assert status.returncode == 1  # not everything is running


def test_missing_program_is_one_sentence(isolated_env):
    env = dict(isolated_env, PATH="/nonexistent")
    r = cli("stack", "up", env=env)
    assert r.returncode == 3
    assert "is not installed" in r.stderr and "apt-get install" in r.stderr
    assert "Traceback" not in r.stderr
