"""The executing warehouse engines the suite runs against, each in a fresh, private warehouse:
a DuckDB file in the test's folder, or a new PostgreSQL database on the local stack's server
(dropped afterwards), so tests never see each other's tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from ordertrack.settings import Settings, load_settings
from ordertrack.stack import Stack
from ordertrack.warehouse.engine import WarehouseEngine

ENGINES = ("duckdb", "postgres")


@contextmanager
def postgres_database(stack: Stack) -> Iterator[str]:
    """A new database owned by the warehouse role; yields its URL."""
    import psycopg

    from tests.conftest import service_missing

    url = stack.postgres.env()["POSTGRES_WAREHOUSE_URL"]
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = stack.postgres.admin_connect()
    except psycopg.Error:
        service_missing("PostgreSQL of the local stack")
    admin.autocommit = True
    try:
        owner = urlparse(url).username
        admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"'.encode())
        yield urlparse(url)._replace(path=f"/{name}").geturl()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        admin.close()


def settings_for(url: str, base: Settings | None = None) -> Settings:
    s = base or load_settings()
    return s.model_copy(update={"warehouse": s.warehouse.model_copy(update={"url": url})})


@contextmanager
def open_warehouse(kind: str, folder: Path, raw_schema: str = "settlement_public",
                   mart_schema: str = "settlement_ods") -> Iterator[WarehouseEngine]:
    if kind == "duckdb":
        from ordertrack.warehouse.duckdb_engine import DuckDBEngine

        yield DuckDBEngine(folder / "w.duckdb", raw_schema, mart_schema)
        return
    from ordertrack.warehouse.postgres_engine import PostgresEngine

    with postgres_database(Stack()) as url:
        engine = PostgresEngine(settings_for(url), raw_schema, mart_schema)
        try:
            yield engine
        finally:
            engine.close()
