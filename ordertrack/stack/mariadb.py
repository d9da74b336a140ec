"""A private MariaDB server from Debian's packages: own data folder, port and socket.

Binlog is on (ROW format, FULL row image, a server id) so Debezium's binlog CDC can read it.
`up` also creates the `kuaisong` source schema and two least-privilege users:

* the pipeline user (`MYSQL_USER`): SELECT on the source, PROCESS to see open transactions in
  `information_schema.innodb_trx`, SLAVE MONITOR to read replica lag: what the poller needs;
* the workload user (`WORKLOAD_MYSQL_USER`): writes the synthetic workload, nothing more;
* the binlog CDC user (`CONNECT_MYSQL_USER`): what Debezium needs to snapshot and stream (CDC_GRANTS).

In a secured stack (`stack up --secure`) the server also speaks TLS with the stack's server
certificate (`--ssl-ca/--ssl-cert/--ssl-key`) and the pipeline, workload and CDC users are
`REQUIRE SSL` (re-applied on every `up`; `REQUIRE NONE` in a plain stack): Debezium's connector
follows MYSQL_SSL_MODE (connectors/debezium.py, docs/RUNTIME.md).
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import subprocess

import pymysql

from ordertrack.errors import OrdertrackError
from ordertrack.log import get_logger
from ordertrack.resources import resource_text
from ordertrack.source.cdc_account import GLOBAL_PRIVILEGES
from ordertrack.source.connection import one_row
from ordertrack.stack.envfile import read_env
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import _cmdline, start_detached
from ordertrack.stack.service import PidTracked, ServiceStatus
from ordertrack.stack.tls import StackTLS
from ordertrack.stack.tools import require

log = get_logger(__name__)

SOURCE_DATABASE = "kuaisong"
PIPELINE_USER = "ordertrack"
WORKLOAD_USER = "kuaisong_app"
_INSTALL_HINT = "install MariaDB's server (apt-get install mariadb-server-core mariadb-client-core)"

PIPELINE_GRANTS = (
    f"GRANT SELECT ON `{SOURCE_DATABASE}`.* TO {{user}}",
    "GRANT PROCESS, SLAVE MONITOR ON *.* TO {user}",
)
WORKLOAD_GRANTS = (f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{SOURCE_DATABASE}`.* TO {{user}}",)
CDC_USER = "ordertrack_cdc"
# What Debezium's binlog reader needs, and why: ordertrack/source/cdc_account.py.
CDC_GRANTS = (
    f"GRANT SELECT ON `{SOURCE_DATABASE}`.* TO {{user}}",
    f"GRANT {', '.join(GLOBAL_PRIVILEGES)} ON *.* TO {{user}}",
)


class MariaDBService(PidTracked):
    name = "mariadb"
    grace_seconds = 60.0

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.dir = layout.mariadb_dir
        self.datadir = self.dir / "data"
        self.socket = layout.mariadb_socket
        self.pid_file = self.dir / "run" / "mariadbd.pid"
        self.marker = str(self.datadir)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.layout.mariadb_port}"

    def check_tools(self) -> None:
        require("mariadbd", _INSTALL_HINT)
        require("mariadb-install-db", _INSTALL_HINT)

    def env(self) -> dict[str, str]:
        old = read_env(self.layout.env_file)
        return {
            "MYSQL_HOST": "127.0.0.1",
            "MYSQL_PORT": str(self.layout.mariadb_port),
            "MYSQL_USER": PIPELINE_USER,
            # Passwords are made once and kept, so an existing `.env` stays valid across `up`s.
            "MYSQL_PASSWORD": old.get("MYSQL_PASSWORD") or secrets.token_urlsafe(18),
            "MYSQL_DATABASE": SOURCE_DATABASE,
            "WORKLOAD_MYSQL_USER": WORKLOAD_USER,
            "WORKLOAD_MYSQL_PASSWORD": old.get("WORKLOAD_MYSQL_PASSWORD") or secrets.token_urlsafe(18),
            "MARIADB_ADMIN_SOCKET": str(self.socket),
            # The binlog CDC account Kafka Connect's Debezium connector logs in with.
            "CONNECT_MYSQL_USER": CDC_USER,
            "CDC_MYSQL_PASSWORD": old.get("CDC_MYSQL_PASSWORD") or secrets.token_urlsafe(18),
            **self._tls_env(),
        }

    def _tls_env(self) -> dict[str, str]:
        if not self.layout.secure:
            return {"MYSQL_SSL_MODE": "disabled"}
        return {"MYSQL_SSL_MODE": "verify_identity", "MYSQL_SSL_CA": str(StackTLS(self.layout.tls_dir).ca.cert_path)}

    # -- up ---------------------------------------------------------------------------------
    def up(self, env: dict[str, str] | None = None) -> ServiceStatus:
        pid = self.running_pid()
        if pid is not None and self.layout.secure and "--ssl-cert=" not in _cmdline(pid):
            # A plain server asked to run secured: TLS is set up at start only.
            log.info("stack.mariadb.restart", reason="TLS asked for")
            self.down()
        if self.running_pid() is None:
            self._install()
            (self.dir / "run").mkdir(parents=True, exist_ok=True)
            self.socket.unlink(missing_ok=True)
            start_detached(self._argv(), log_file=self.dir / "stdout.log", pid_file=self.pid_file)
            log.info("stack.mariadb.started", address=self.address)
        self.wait_healthy(self._answers, timeout=60, interval=0.5, log_file=self.dir / "error.log",
                          not_ready="MariaDB did not accept connections")
        self._bootstrap(env or self.env())
        return self.status()

    def _install(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        argv = [
            require("mariadb-install-db", _INSTALL_HINT),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise OrdertrackError(f"mariadb-install-db failed: {out.stderr.strip().splitlines()[-1:]}")

    def _argv(self) -> list[str]:
        argv = [
            require("mariadbd", _INSTALL_HINT),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.layout.mariadb_port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.dir / 'run' / 'mariadbd.server.pid'}",
            f"--log-error={self.dir / 'error.log'}",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--innodb-buffer-pool-size=512M",
            "--innodb-log-file-size=256M",
            "--max-connections=300",
            # Binlog for Debezium's CDC path.
            "--server-id=1",
            f"--log-bin={self.datadir / 'binlog'}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-expire-logs-seconds=259200",
        ]
        if self.layout.secure:
            tls = StackTLS(self.layout.tls_dir)
            argv += [f"--ssl-ca={tls.ca.cert_path}", f"--ssl-cert={tls.server.cert_path}",
                     f"--ssl-key={tls.server.key_path}"]
        if os.geteuid() == 0:
            argv.append("--user=root")
        return argv

    def admin_connect(self, database: str | None = None) -> pymysql.connections.Connection:
        """A superuser connection over the socket (unix_socket auth as the OS user)."""
        user = "root" if os.geteuid() == 0 else getpass.getuser()
        return pymysql.connect(
            unix_socket=str(self.socket), user=user, database=database, autocommit=True, connect_timeout=5
        )

    def _answers(self) -> bool:
        try:
            with self.admin_connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except pymysql.err.MySQLError:
            return False

    def _bootstrap(self, env: dict[str, str]) -> None:
        """Idempotent: schema, users, passwords and grants are (re)applied on every `up`."""
        with self.admin_connect() as conn, conn.cursor() as cur:
            # Anonymous accounts would shadow ours for connections from localhost.
            cur.execute("SELECT host FROM mysql.user WHERE user = ''")
            for (host,) in cur.fetchall():
                cur.execute("DROP USER ''@%s", (host,))
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{SOURCE_DATABASE}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{SOURCE_DATABASE}`")
            for stmt in split_sql(resource_text("source_schema.sql")):
                cur.execute(stmt)
            # Every account must use TLS in a secured stack, Debezium's CDC account included.
            require = "REQUIRE SSL" if self.layout.secure else "REQUIRE NONE"
            for user, pw_var, grants, tls_clause in (
                (env["MYSQL_USER"], "MYSQL_PASSWORD", PIPELINE_GRANTS, require),
                (env["WORKLOAD_MYSQL_USER"], "WORKLOAD_MYSQL_PASSWORD", WORKLOAD_GRANTS, require),
                (env["CONNECT_MYSQL_USER"], "CDC_MYSQL_PASSWORD", CDC_GRANTS, require),
            ):
                account = f"'{user}'@'%'"
                # With bound parameters pymysql %-formats the statement, so the host '%' is doubled.
                bound = account.replace("%", "%%")
                cur.execute(f"CREATE USER IF NOT EXISTS {bound} IDENTIFIED BY %s", (env[pw_var],))
                cur.execute(f"ALTER USER {bound} IDENTIFIED BY %s {tls_clause}", (env[pw_var],))
                for g in grants:
                    cur.execute(g.format(user=account))

    # -- down / status ------------------------------------------------------------------------
    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus(self.name, self.address, "stopped", None)
        try:
            with self.admin_connect() as conn, conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                version = one_row(cur)[0]
            return ServiceStatus(self.name, self.address, "running", pid, f"MariaDB {version}")
        except pymysql.err.MySQLError:
            return ServiceStatus(self.name, self.address, "unhealthy", pid)


def split_sql(text: str) -> list[str]:
    """Split a file of `;`-terminated statements, dropping `--` comment lines."""
    body = "\n".join(line for line in text.splitlines() if not re.match(r"\s*--", line))
    return [s.strip() for s in body.split(";") if s.strip()]
