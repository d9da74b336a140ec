"""Shared fixtures. Integration tests talk to the real local stack (`ordertrack stack up`).

A missing service skips an integration test on a developer's machine but fails it in CI
(`CI=true`), so a green CI run always means the integration tests really ran.
"""

from __future__ import annotations

import os

import psycopg
import pymysql
import pytest
from hypothesis import settings as hypothesis_settings

from ordertrack.config import load_pipeline_config
from ordertrack.errors import OrdertrackError
from ordertrack.kafka.admin import KafkaAdmin
from ordertrack.settings import Settings, load_settings
from ordertrack.stack import Stack
from tests.support.pipeline_env import make_env, make_env_module  # noqa: F401 - fixtures for every test folder
from tests.support.secure_stack import secure_stack, secure_stack_connect  # noqa: F401 - the secured second stack


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# Property tests explore new examples locally; in CI they replay a fixed set, so a submission's
# result does not depend on the draw. The local run is where new counterexamples are found.
# No deadline in either: an example slowed past Hypothesis' 200 ms by a busy machine, then fast on
# its replay, fails as "flaky" (seen once locally on test_typed, never reproduced): these tests
# judge results, never time.
hypothesis_settings.register_profile("local", deadline=None)
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
hypothesis_settings.load_profile("ci" if _in_ci() else "local")


def service_missing(what: str) -> None:
    msg = f"{what} is not available (start it with `ordertrack stack up`)"
    if _in_ci():
        pytest.fail(f"{msg}; in CI every integration test must run", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def pipeline_config():
    return load_pipeline_config()


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    try:
        KafkaAdmin(settings.kafka, timeout=5).list_topics()
    except OrdertrackError:
        service_missing(f"Kafka at {settings.kafka.bootstrap_servers}")
    return settings.kafka.bootstrap_servers


@pytest.fixture(scope="session")
def mariadb_admin(stack: Stack):
    """A superuser connection over the local server's socket."""
    try:
        conn = stack.mariadb.admin_connect(database="kuaisong")
    except pymysql.err.MySQLError:
        service_missing("MariaDB of the local stack")
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def postgres_url(stack: Stack) -> str:
    """`POSTGRES_WAREHOUSE_URL` of the local PostgreSQL: the warehouse role, owner of `warehouse`."""
    url = stack.postgres.env()["POSTGRES_WAREHOUSE_URL"]
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        service_missing("PostgreSQL of the local stack")
    return url


@pytest.fixture(scope="session")
def connect_url(stack: Stack, kafka_bootstrap: str) -> str:
    """Kafka Connect with the Debezium plugin (`ordertrack stack up --connect`)."""
    if stack.connect.status().state != "running":
        service_missing(f"Kafka Connect at {stack.connect.url}")
    return stack.connect.url
