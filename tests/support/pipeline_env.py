"""A private pipeline per test: its own source database, topics, config file and warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ordertrack.config import PipelineConfig
from ordertrack.kafka.admin import KafkaAdmin, pipeline_topics
from ordertrack.resources import resource_path, resource_text
from ordertrack.settings import KafkaSettings
from ordertrack.stack.mariadb import CDC_USER, PIPELINE_USER, WORKLOAD_USER, split_sql

ORDERTRACK = str(Path(sys.executable).with_name("ordertrack"))


@dataclass
class Env:
    """One test's pipeline: its source database, config (object and YAML file) and topics."""

    db: str
    config: PipelineConfig
    config_path: Path
    bootstrap: str
    warehouse: Path
    warehouse_url: str = ""
    """The warehouse's URL: a DuckDB file (`warehouse`) unless the test asked for another engine."""

    def __post_init__(self) -> None:
        self.warehouse_url = self.warehouse_url or f"duckdb:///{self.warehouse}"

    @property
    def env_vars(self) -> dict[str, str]:
        return {"WAREHOUSE_URL": self.warehouse_url}

    def engine(self):
        from ordertrack.warehouse.factory import open_engine
        from tests.support.warehouses import settings_for

        return open_engine(self.config, settings_for(self.warehouse_url), create="always")

    def spec(self, table: str):
        from ordertrack.tables import TableRegistry

        return TableRegistry(self.config).get(table)

    def topic(self, table: str) -> str:
        return self.spec(table).topic

    def cli(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [ORDERTRACK, "--config", str(self.config_path), *args],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env_vars, **env},
        )

    def generate(self, admin, *args: str) -> subprocess.CompletedProcess:
        """`ordertrack generate ARGS` into this test's copy of the source (the workload account is
        granted it first); fails the test if it fails."""
        with admin.cursor() as cur:
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{self.db}`.* TO '{WORKLOAD_USER}'@'%'")
        r = self.cli("generate", *args, MYSQL_DATABASE=self.db)
        assert r.returncode == 0, r.stderr
        return r

    def popen(self, *args: str, stdout: int = subprocess.PIPE, **env: str) -> subprocess.Popen:
        """`stdout=subprocess.DEVNULL` for a long-running command whose output nobody reads (a
        full pipe would block it)."""
        return subprocess.Popen(
            [ORDERTRACK, "--config", str(self.config_path), *args],
            stdout=stdout, stderr=subprocess.PIPE, text=True, env={**os.environ, **self.env_vars, **env},
        )


@contextmanager
def _env_factory(mariadb_admin, kafka_bootstrap, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    """Factory: `make(buffer_minutes=0, batch_size=100, dq={...}, ...)` -> Env. Cleans up after."""
    made: list[Env] = []
    databases = ExitStack()

    def make(**overrides) -> Env:
        """`warehouse="postgres"`: a new database on the local PostgreSQL instead of a DuckDB file."""
        tag = uuid.uuid4().hex[:8]
        kind = overrides.pop("warehouse", "duckdb")
        db = f"pt_{tag}"
        with mariadb_admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{db}`")
            cur.execute(f"USE `{db}`")
            for stmt in split_sql(resource_text("source_schema.sql")):
                cur.execute(stmt)
            cur.execute(f"GRANT SELECT ON `{db}`.* TO '{PIPELINE_USER}'@'%'")
            cur.execute("USE kuaisong")
        raw = yaml.safe_load(resource_path("pipeline.yaml").read_text())
        raw["pipeline"]["name"] = f"test_{tag}"
        raw["source"]["database"] = db
        raw["kafka"].update(
            topic_prefix=f"t{tag}", watermark_topic=f"t{tag}.watermarks", dead_letter_topic=f"t{tag}.dlq",
            transaction_timeout_seconds=60,
        )
        raw["window_settings"].update(
            buffer_minutes=overrides.pop("buffer_minutes", 5),
            lookback_minutes=overrides.pop("lookback_minutes", 120),
            max_hold_minutes=overrides.pop("max_hold_minutes", 30),
        )
        raw["dq"].update(overrides.pop("dq", {}))
        batch = overrides.pop("batch_size", 500)
        strategy = overrides.pop("strategy", None)
        for t in raw["tables"]:
            t["full_name"] = f"{db}.{t['full_name'].split('.')[1]}"
            t["batch_size"] = batch
            if strategy:
                t["cdc_strategy"] = strategy
        if strategy == "debezium":
            # Its own connector, joining the source as a replica under an id no other test uses.
            raw["cdc"] = {"connector": f"t{tag}-cdc", "server_id": 100_000 + int(tag, 16) % 1_000_000_000}
            with mariadb_admin.cursor() as cur:
                cur.execute(f"GRANT SELECT ON `{db}`.* TO '{CDC_USER}'@'%'")
        raw["processing"].update(overrides)
        url = ""
        if kind == "postgres":
            from ordertrack.stack import Stack
            from tests.support.warehouses import postgres_database

            url = databases.enter_context(postgres_database(Stack()))
            raw["target"]["type"] = "postgres"
        path = tmp_path / f"pipeline_{tag}.yaml"
        path.write_text(yaml.safe_dump(raw))
        cfg = PipelineConfig.model_validate(raw)
        KafkaAdmin(KafkaSettings(bootstrap_servers=kafka_bootstrap)).ensure_topics(pipeline_topics(cfg))
        env = Env(db, cfg, path, kafka_bootstrap, tmp_path / f"warehouse_{tag}.duckdb", url)
        made.append(env)
        return env

    try:
        yield make
    finally:
        databases.close()
        for env in made:
            if any(t.cdc_strategy == "debezium" for t in env.config.tables):
                env.cli("connectors", "delete", timeout=60)
            with mariadb_admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{env.db}`")
            KafkaAdmin(KafkaSettings(bootstrap_servers=kafka_bootstrap)).delete_topics([t.name for t in pipeline_topics(env.config)])


@pytest.fixture
def make_env(mariadb_admin, kafka_bootstrap, tmp_path):  # noqa: D103 - re-exported by tests/conftest.py
    with _env_factory(mariadb_admin, kafka_bootstrap, tmp_path) as make:
        yield make


@pytest.fixture(scope="module")
def make_env_module(mariadb_admin, kafka_bootstrap, tmp_path_factory):
    """`make_env` for data shared by a module's tests (built once, e.g. a million rows)."""
    with _env_factory(mariadb_admin, kafka_bootstrap, tmp_path_factory.mktemp("env")) as make:
        yield make
