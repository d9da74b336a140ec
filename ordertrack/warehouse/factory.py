"""The warehouse engine named by `WAREHOUSE_URL`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError, ServiceUnavailableError
from ordertrack.settings import Settings
from ordertrack.warehouse.engine import WarehouseEngine


class WarehouseMissingError(ServiceUnavailableError):
    """The DuckDB file a read-only command would read does not exist (exit 4, like a warehouse
    that does not answer: a worker starting up may still create it)."""


ENGINE_SCHEMES = {"duckdb": "duckdb", "redshift": "redshift", "postgresql": "postgres", "postgres": "postgres"}
"""WAREHOUSE_URL scheme -> the `target.type` that names the same engine: the one place both meet."""
URL_FORMS = ("duckdb:///path/to/file.duckdb, postgresql://user:password@host:port/database or "
             "redshift://host:port/database")


def engine_type(config: PipelineConfig, settings: Settings) -> str:
    """The engine `WAREHOUSE_URL` names, after checking that `target.type` names the same one."""
    scheme = urlparse(settings.warehouse.url).scheme
    if scheme not in ENGINE_SCHEMES:
        raise ConfigError(f"WAREHOUSE_URL scheme {scheme!r} is not supported: use {URL_FORMS}.")
    kind = ENGINE_SCHEMES[scheme]
    if kind != config.target.type:
        raise ConfigError(f"target.type in the pipeline file is {config.target.type} but WAREHOUSE_URL is a {scheme} "
                          f"URL: set target.type to {kind}, or point WAREHOUSE_URL at the {config.target.type} warehouse.")
    return kind


Create = Literal["always", "if_configured", "never"]
"""When a command may create a DuckDB warehouse file that does not exist yet: `always` for those
that land data (consume, run-once, the sidecar); `if_configured` for those that write into it but
land nothing (dq run, marts run, maintenance), only where WAREHOUSE_URL names it, never under the
built-in default; `never` for those that only read."""


def open_engine(config: PipelineConfig, settings: Settings, *, create: Create = "if_configured") -> WarehouseEngine:
    """The configured warehouse; a missing DuckDB file is created only as `create` allows, so a
    command run in the wrong folder stops with one sentence instead of leaving an empty warehouse."""
    url = settings.warehouse.url
    kind = engine_type(config, settings)
    if kind == "duckdb":
        from ordertrack.warehouse.duckdb_engine import DuckDBEngine

        # SQLAlchemy's rule: duckdb:///relative/path, duckdb:////absolute/path.
        path = url.removeprefix("duckdb:///")
        if not path:
            raise ConfigError("WAREHOUSE_URL names no DuckDB file: use duckdb:///path/to/file.duckdb.")
        defaulted = "warehouse" in settings.defaulted
        if not Path(path).exists() and (create == "never" or (create == "if_configured" and defaulted)):
            named = "the built-in default, as WAREHOUSE_URL is not set" if defaulted else "WAREHOUSE_URL"
            raise WarehouseMissingError(
                f"There is no DuckDB warehouse at {Path(path).absolute()} ({named}): point WAREHOUSE_URL at "
                "the pipeline's warehouse, or land data first (`ordertrack consume` creates it).")
        return DuckDBEngine(path, config.target.raw_schema, config.target.mart_schema)
    if kind == "postgres":
        from ordertrack.warehouse.postgres_engine import PostgresEngine

        return PostgresEngine(settings, config.target.raw_schema, config.target.mart_schema)
    from ordertrack.warehouse.redshift_engine import RedshiftEngine

    return RedshiftEngine(settings, config.target.raw_schema, config.target.mart_schema)
