"""`stack up | down | status`: every service in order, one `.env` for all of them."""

from __future__ import annotations

from ordertrack.stack.connect import ConnectService
from ordertrack.stack.envfile import read_env, write_env
from ordertrack.stack.kafka import SECURE_ENV_KEYS, KafkaService
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.mariadb import MariaDBService
from ordertrack.stack.moto import MotoService
from ordertrack.stack.postgres import PostgresService
from ordertrack.stack.service import ServiceStatus
from ordertrack.stack.tls import ensure_stack_tls


class Stack:
    def __init__(self, layout: StackLayout | None = None) -> None:
        self.layout = layout or StackLayout.from_env()
        self.kafka = KafkaService(self.layout)
        self.mariadb = MariaDBService(self.layout)
        self.postgres = PostgresService(self.layout)
        self.s3 = MotoService(self.layout)
        self.connect = ConnectService(self.layout)
        self.services = (self.mariadb, self.postgres, self.kafka, self.s3, self.connect)

    def up(self, connect: bool = False, postgres: bool = True, secure: bool = False) -> list[ServiceStatus]:
        """Start what is not running and wait for health; running services are left alone. The
        Kafka Connect worker only with `connect` (binlog CDC), or when it already runs;
        PostgreSQL unless `postgres` is False (a stack that lands into DuckDB only, such as the
        fault harness's), or when it already runs. Asked for once, each is kept up.

        `secure` (or a stack secured before: its `tls/` folder exists) makes the certificates
        once and runs Kafka with SASL_SSL and mutual-TLS listeners and MariaDB with TLS; a
        running plain Kafka or MariaDB is restarted for it (ordertrack/stack/tls.py, kafka.py)."""
        with_connect = connect or self._started(self.connect)
        with_postgres = postgres or self._started(self.postgres)
        for s in self.services:
            if (s is not self.connect or with_connect) and (s is not self.postgres or with_postgres):
                s.check_tools()
        self.layout.root.mkdir(parents=True, exist_ok=True)
        if secure or self.layout.secure:
            ensure_stack_tls(self.layout.tls_dir)
        env = self.env()
        write_env(self.layout.env_file, env)
        return [self.mariadb.up(env),
                self.postgres.up(env) if with_postgres else self._off(self.postgres),
                self.kafka.up(env), self.s3.up(),
                self.connect.up(env) if with_connect else self._off(self.connect)]

    def down(self) -> list[ServiceStatus]:
        return [s.down() if self._started(s) else self._off(s) for s in reversed(self.services)]

    def status(self) -> list[ServiceStatus]:
        return [s.status() if self._started(s) else self._off(s) for s in self.services]

    def _started(self, s: object) -> bool:
        """Whether an optional service (Connect, PostgreSQL) was started here; the others always are."""
        if s is self.connect:
            return self.connect.pid_file.exists()
        if s is self.postgres:
            return self.postgres.pid_file.exists()
        return True

    def _off(self, s: object) -> ServiceStatus:
        if s is self.connect:
            return ServiceStatus(self.connect.name, self.connect.url, "off", None,
                                 "not started: only binlog CDC needs it (stack up --connect)")
        return ServiceStatus(self.postgres.name, self.postgres.address, "off", None,
                             "not started: only the PostgreSQL warehouse needs it (stack up without --no-postgres)")

    def env(self) -> dict[str, str]:
        values = dict(read_env(self.layout.env_file))
        if not self.layout.secure:  # no leftovers of a secured stack whose tls/ folder was removed
            for k in (*SECURE_ENV_KEYS, "MYSQL_SSL_CA"):
                values.pop(k, None)
        for s in self.services:
            values.update(s.env())
        values["WAREHOUSE_URL"] = f"duckdb:///{self.layout.warehouse_path}"
        return values
