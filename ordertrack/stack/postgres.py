"""A private PostgreSQL server from Debian's packages: own data folder, port and socket folder.

For the PostgreSQL warehouse engine and its tests. `up` makes the data folder once (`initdb`,
superuser `ordertrack_admin`, trusted over the socket only: TCP logins need a scram password),
starts the server and (re)applies, on every `up`:

* the database `warehouse`, owned by the warehouse role (so the engine can create schemas);
* the login role `ordertrack_wh` (`POSTGRES_WAREHOUSE_URL`): no superuser, CREATEDB or CREATEROLE.

PostgreSQL refuses to run as root. When ordertrack runs as root, `initdb` and the server run as
the unprivileged `postgres` user the Debian package creates (`setpriv`, which execs: the pid
`up` records is the postmaster's own), and the postgres folder is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

from ordertrack.errors import ConfigError, MissingToolError, OrdertrackError
from ordertrack.log import get_logger
from ordertrack.stack.envfile import read_env
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import _cmdline, _proc_state, is_ours, start_detached
from ordertrack.stack.service import PidTracked, ServiceStatus
from ordertrack.stack.tools import POSTGRES_HINT, require, require_postgres

log = get_logger(__name__)

ADMIN_USER = "ordertrack_admin"
WAREHOUSE_DATABASE = "warehouse"
WAREHOUSE_USER = "ordertrack_wh"
RUN_AS = "postgres"  # the unprivileged user the server runs as when ordertrack runs as root
_SOCKET_PATH_MAX = 107  # sun_path, less the terminating NUL


class PostgresService(PidTracked):
    name = "postgres"
    grace_seconds = 60.0

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.dir = layout.postgres_dir
        self.datadir = self.dir / "data"
        self.run_dir = self.dir / "run"
        self.log_file = self.dir / "postgres.log"
        # Ours; the server also keeps its own `postmaster.pid` in the data folder (see _adopt_or_clear).
        self.pid_file = self.run_dir / "postgres.pid"
        self.marker = str(self.datadir)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.layout.postgres_port}"

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _version(self) -> str | None:
        """The major version an existing data folder was made by, so its own binaries run it."""
        try:
            return (self.datadir / "PG_VERSION").read_text().strip()
        except OSError:
            return None

    def _program(self, name: str) -> str:
        return require_postgres(name, self._version())

    def check_tools(self) -> None:
        self._program("postgres")
        self._program("initdb")
        if self._as_root:
            require("setpriv", "install util-linux (apt-get install util-linux)")
            try:
                pwd.getpwnam(RUN_AS)
            except KeyError:
                raise MissingToolError(
                    f"PostgreSQL refuses to run as root and there is no `{RUN_AS}` user to run it as: {POSTGRES_HINT}."
                ) from None
            self._check_reachable()

    def env(self) -> dict[str, str]:
        old = urlsplit(read_env(self.layout.env_file).get("POSTGRES_WAREHOUSE_URL", ""))
        # The password is made once and kept, so an existing `.env` stays valid across `up`s.
        password = unquote(old.password) if old.username == WAREHOUSE_USER and old.password else None
        password = password or secrets.token_urlsafe(18)
        return {
            "POSTGRES_WAREHOUSE_URL": (f"postgresql://{WAREHOUSE_USER}:{quote(password, safe='')}"
                                       f"@127.0.0.1:{self.layout.postgres_port}/{WAREHOUSE_DATABASE}"
                                       # The local server has no TLS; the engine's default is `require`.
                                       "?sslmode=disable"),
            "POSTGRES_ADMIN_SOCKET_DIR": str(self.run_dir),
        }

    # -- up ---------------------------------------------------------------------------------
    def up(self, env: dict[str, str] | None = None) -> ServiceStatus:
        if self.running_pid() is None and not self._adopt_or_clear():
            self._install()
            pid = start_detached(self._wrap(self._argv()), log_file=self.log_file, pid_file=self.pid_file,
                                 cwd=self.dir)
            self._await_exec(pid)
            log.info("stack.postgres.started", address=self.address)
        self.wait_healthy(self._answers, timeout=60, interval=0.3, log_file=self.log_file,
                          not_ready="PostgreSQL did not accept connections")
        self._bootstrap(env or self.env())
        return self.status()

    def _wrap(self, argv: list[str]) -> list[str]:
        """As root: the same program as the unprivileged user. setpriv execs (no child in
        between), so the pid `start_detached` records is the postmaster's."""
        if not self._as_root:
            return argv
        return [require("setpriv", "install util-linux"), f"--reuid={RUN_AS}", f"--regid={RUN_AS}",
                "--init-groups", "--", *argv]

    def _await_exec(self, pid: int, timeout: float = 10.0) -> None:
        """As root, setpriv execs postgres after `start_detached` has returned; while the kernel
        runs that exec, /proc/<pid>/cmdline reads empty, and `wait_healthy` would take the
        server for dead. Wait until the pid shows the server's own command line (or is gone)."""
        program = self._program("postgres")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _proc_state(pid) not in (None, "Z", "X"):
            if _cmdline(pid).startswith(program):
                return
            time.sleep(0.01)

    def _adopt_or_clear(self) -> bool:
        """Our pid file names no live server of ours: look at the server's own `postmaster.pid`.
        A live postmaster of this data folder (our pid file was lost) is adopted: True. A lock
        left by a dead server, or naming a pid now reused by an unrelated program (a restarted
        container), is removed, since the server would refuse to start over it; a lock held by
        some other postgres process is left for the server to refuse."""
        lock = self.datadir / "postmaster.pid"
        pid = read_pid_first_line(lock)
        if pid is None:
            return False
        if is_ours(pid, self.marker):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(f"{pid}\n")
            log.info("stack.postgres.adopted", pid=pid)
            return True
        if _comm(pid) != "postgres":
            lock.unlink(missing_ok=True)
        return False

    def _install(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # The socket trusts whoever reaches it as the superuser: its folder is the server's alone.
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        socket = self.run_dir / f".s.PGSQL.{self.layout.postgres_port}"
        if len(str(socket)) > _SOCKET_PATH_MAX:
            raise OrdertrackError(f"PostgreSQL's socket path {socket} is longer than {_SOCKET_PATH_MAX} bytes: "
                                  "use a shorter state folder (ORDERTRACK_STATE_DIR).")
        if self._as_root:
            self._hand_to_run_as()
        if (self.datadir / "PG_VERSION").is_file():
            return
        argv = [
            self._program("initdb"),
            f"--pgdata={self.datadir}",
            f"--username={ADMIN_USER}",
            "--auth-local=trust",  # the admin, over the socket (whose folder is mode 0700)
            "--auth-host=scram-sha-256",  # every TCP login needs a password
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # the server runs with fsync=off anyway
        ]
        out = subprocess.run(self._wrap(argv), capture_output=True, text=True, timeout=300, cwd=self.dir)
        if out.returncode != 0:
            raise OrdertrackError(f"initdb failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")

    def _check_reachable(self) -> None:
        """As root: the user the server runs as needs search permission on every folder above the
        postgres folder (a state folder under /root or pytest's 0700 temp folder has none)."""
        user = pwd.getpwnam(RUN_AS)
        groups = set(os.getgrouplist(RUN_AS, user.pw_gid))
        for parent in self.dir.parents:
            try:
                st = parent.stat()
            except FileNotFoundError:
                continue  # made by `up`, with the usual mode
            if st.st_uid == user.pw_uid:
                ok = st.st_mode & stat.S_IXUSR
            elif st.st_gid in groups:
                ok = st.st_mode & stat.S_IXGRP
            else:
                ok = st.st_mode & stat.S_IXOTH
            if not ok:
                raise ConfigError(
                    f"PostgreSQL refuses to run as root, so it runs as the user `{RUN_AS}`, which cannot reach "
                    f"{self.dir}: {parent} is mode {stat.S_IMODE(st.st_mode):04o}. Put the state folder "
                    f"(ORDERTRACK_STATE_DIR) where `{RUN_AS}` can reach it, or `chmod o+x {parent}`."
                )

    def _hand_to_run_as(self) -> None:
        """As root: the postgres folder belongs to the user the server runs as."""
        self._check_reachable()
        user = pwd.getpwnam(RUN_AS)
        self.datadir.mkdir(mode=0o700, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        for path in (self.dir, self.run_dir, self.datadir, self.log_file):
            os.chown(path, user.pw_uid, user.pw_gid)

    def _argv(self) -> list[str]:
        return [
            self._program("postgres"),
            "-D", str(self.datadir),
            "-k", str(self.run_dir),
            "-p", str(self.layout.postgres_port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
        ]

    def admin_connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """A superuser connection over the socket (trusted there, and only there)."""
        return psycopg.connect(host=str(self.run_dir), port=self.layout.postgres_port, user=ADMIN_USER,
                               dbname=dbname, autocommit=True, connect_timeout=5)

    def _answers(self) -> bool:
        try:
            with self.admin_connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def _bootstrap(self, env: dict[str, str]) -> None:
        """Idempotent: the role, its password and the database's owner are (re)applied on every `up`."""
        password = unquote(urlsplit(env["POSTGRES_WAREHOUSE_URL"]).password or "")
        user, database = sql.Identifier(WAREHOUSE_USER), sql.Identifier(WAREHOUSE_DATABASE)
        with self.admin_connect() as conn:
            # DDL takes no bound parameters: the password goes in as a quoted literal.
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (WAREHOUSE_USER,)).fetchone()
            verb = sql.SQL("ALTER" if exists else "CREATE")
            conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(verb, user, sql.Literal(password)))
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (WAREHOUSE_DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(database, user))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, user))

    # -- down / status ------------------------------------------------------------------------
    def down(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is not None:
            # Fast shutdown first: SIGTERM (what stop_pid sends) is postgres's "smart" shutdown,
            # which waits for every client to disconnect. A later SIGTERM does not undo it.
            os.kill(pid, signal.SIGINT)
        return super().down()

    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus(self.name, self.address, "stopped", None)
        try:
            with self.admin_connect() as conn:
                # SHOW answers one row; psycopg's stub types fetchone() Optional whatever the statement
                version = cast("tuple[Any, ...]", conn.execute("SHOW server_version").fetchone())[0]
            return ServiceStatus(self.name, self.address, "running", pid, f"PostgreSQL {version.split()[0]}")
        except psycopg.Error:
            return ServiceStatus(self.name, self.address, "unhealthy", pid)


def read_pid_first_line(path: Path) -> int | None:
    """The pid on the first line of a `postmaster.pid` (more lines follow it)."""
    try:
        return int(path.read_text().splitlines()[0].strip())
    except (OSError, ValueError, IndexError):
        return None


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
