"""The stack's PostgreSQL on its own (a private folder and port): up, the warehouse role, down by pid."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from ordertrack.stack.layout import StackLayout
from ordertrack.stack.postgres import PostgresService

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres() -> PostgresService:
    # Not under pytest's 0700 temp folder: as root the server runs as `postgres`, which must reach it.
    root = Path(tempfile.mkdtemp(prefix="ordertrack-pg-"))
    root.chmod(0o755)
    layout = replace(StackLayout.from_env(), root=root, postgres_port=15434)
    service = PostgresService(layout)
    yield service
    service.down()  # never leave a stray server, even when the test failed
    shutil.rmtree(root, ignore_errors=True)


def _pids_naming(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in cmd and state != "Z":
                pids.append(int(d.name))
    return pids


def test_up_is_idempotent_and_the_warehouse_role_owns_its_database(postgres):
    postgres.check_tools()
    env = postgres.env()
    assert env["POSTGRES_ADMIN_SOCKET_DIR"] == str(postgres.run_dir)
    url = env["POSTGRES_WAREHOUSE_URL"]
    assert url.startswith("postgresql://ordertrack_wh:") and url.endswith("@127.0.0.1:15434/warehouse?sslmode=disable")

    first = postgres.up(env)
    assert (first.name, first.state, first.address) == ("postgres", "running", "127.0.0.1:15434")
    assert first.detail.startswith("PostgreSQL ")
    # Our pid file holds the postmaster's pid, the one the server writes in its own lock file.
    assert (postgres.datadir / "postmaster.pid").read_text().split()[0] == str(first.pid)
    assert postgres.running_pid() == first.pid

    second = postgres.up(env)
    assert second.pid == first.pid and second.state == "running"

    # The role logs in over TCP with its password and may create schemas in `warehouse`.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA marts")
        conn.execute("CREATE TABLE marts.t (x int)")
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'warehouse'").fetchone()
        assert owner == ("ordertrack_wh",)
    # Wrong password, and the superuser over TCP (trusted only over the socket), are refused.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url.replace("ordertrack_wh:", "ordertrack_wh:x"), connect_timeout=5)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect("postgresql://ordertrack_admin@127.0.0.1:15434/postgres", connect_timeout=5)
    # The socket folder is the server's alone.
    assert postgres.run_dir.stat().st_mode & 0o077 == 0


def test_down_stops_by_pid_even_with_a_client_connected(postgres):
    env = postgres.env()  # no `.env` here (Stack writes it): a new password on every call
    pid = postgres.up(env).pid
    conn = psycopg.connect(env["POSTGRES_WAREHOUSE_URL"], connect_timeout=5)
    try:
        stopped = postgres.down()  # fast shutdown: a smart one would wait for this client
        assert stopped.state == "stopped" and stopped.pid is None
        assert _pids_naming(str(postgres.datadir)) == []
        assert not (postgres.datadir / "postmaster.pid").exists()
        assert pid not in _pids_naming(str(postgres.dir))
    finally:
        conn.close()
    # Up again on the same data folder.
    again = postgres.up(env)
    assert again.state == "running" and again.pid != pid
    with psycopg.connect(env["POSTGRES_WAREHOUSE_URL"], connect_timeout=5) as c:
        assert c.execute("SELECT current_user").fetchone() == ("ordertrack_wh",)


def test_a_lost_pid_file_is_adopted_not_started_twice(postgres):
    pid = postgres.up().pid
    postgres.pid_file.unlink()
    assert postgres.status().state == "stopped"
    assert postgres.up().pid == pid  # found through the server's own postmaster.pid
    assert postgres.running_pid() == pid


def test_status_of_a_server_never_started(postgres):
    assert postgres.status().state == "stopped"
    assert postgres.down().state == "stopped"
