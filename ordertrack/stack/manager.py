"""`stack up | down | status`: every service in order, one `.env` for all of them."""

from __future__ import annotations

from ordertrack.stack.envfile import read_env, write_env
from ordertrack.stack.kafka import KafkaService
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.mariadb import MariaDBService
from ordertrack.stack.moto import MotoService
from ordertrack.stack.service import ServiceStatus


class Stack:
    def __init__(self, layout: StackLayout | None = None) -> None:
        self.layout = layout or StackLayout.from_env()
        self.kafka = KafkaService(self.layout)
        self.mariadb = MariaDBService(self.layout)
        self.s3 = MotoService(self.layout)
        self.services = (self.mariadb, self.kafka, self.s3)

    def up(self) -> list[ServiceStatus]:
        """Start what is not running and wait for health; running services are left alone."""
        for s in self.services:
            s.check_tools()
        self.layout.root.mkdir(parents=True, exist_ok=True)
        env = self.env()
        write_env(self.layout.env_file, env)
        return [self.mariadb.up(env), self.kafka.up(), self.s3.up()]

    def down(self) -> list[ServiceStatus]:
        return [s.down() for s in reversed(self.services)]

    def status(self) -> list[ServiceStatus]:
        return [s.status() for s in self.services]

    def env(self) -> dict[str, str]:
        values = dict(read_env(self.layout.env_file))
        for s in self.services:
            values.update(s.env())
        values["WAREHOUSE_URL"] = f"duckdb:///{self.layout.warehouse_path}"
        return values
