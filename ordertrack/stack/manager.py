"""`stack up | down | status`: every service in order, one `.env` for all of them."""

from __future__ import annotations

from ordertrack.stack.connect import ConnectService
from ordertrack.stack.envfile import read_env, write_env
from ordertrack.stack.kafka import KafkaService
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.mariadb import MariaDBService
from ordertrack.stack.moto import MotoService
from ordertrack.stack.postgres import PostgresService
from ordertrack.stack.service import ServiceStatus


class Stack:
    def __init__(self, layout: StackLayout | None = None) -> None:
        self.layout = layout or StackLayout.from_env()
        self.kafka = KafkaService(self.layout)
        self.mariadb = MariaDBService(self.layout)
        self.postgres = PostgresService(self.layout)
        self.s3 = MotoService(self.layout)
        self.connect = ConnectService(self.layout)
        self.services = (self.mariadb, self.postgres, self.kafka, self.s3, self.connect)

    def up(self, connect: bool = False) -> list[ServiceStatus]:
        """Start what is not running and wait for health; running services are left alone. The
        Kafka Connect worker only with `connect` (binlog CDC), or when it already runs."""
        with_connect = connect or self.connect.pid_file.exists()  # asked for once: kept up, restarted if it died
        for s in self.services:
            if s is not self.connect or with_connect:
                s.check_tools()
        self.layout.root.mkdir(parents=True, exist_ok=True)
        env = self.env()
        write_env(self.layout.env_file, env)
        statuses = [self.mariadb.up(env), self.postgres.up(env), self.kafka.up(), self.s3.up()]
        return statuses + [self.connect.up(env) if with_connect else self._connect_off()]

    def down(self) -> list[ServiceStatus]:
        return [self._connect_off() if s is self.connect and not s.pid_file.exists() else s.down()
                for s in reversed(self.services)]

    def status(self) -> list[ServiceStatus]:
        return [s.status() if s is not self.connect or s.pid_file.exists() else self._connect_off()
                for s in self.services]

    def _connect_off(self) -> ServiceStatus:
        return ServiceStatus(self.connect.name, self.connect.url, "off", None,
                             "not started: only binlog CDC needs it (stack up --connect)")

    def env(self) -> dict[str, str]:
        values = dict(read_env(self.layout.env_file))
        for s in self.services:
            values.update(s.env())
        values["WAREHOUSE_URL"] = f"duckdb:///{self.layout.warehouse_path}"
        return values
