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


Create = Literal["always", "if_configured", "never"]
"""When a command may create a DuckDB warehouse file that does not exist yet: `always` for those
that land data (consume, run-once, the sidecar); `if_configured` for those that write into it but
land nothing (dq run, marts run, maintenance), only where WAREHOUSE_URL names it, never under the
built-in default; `never` for those that only read."""


def open_engine(config: PipelineConfig, settings: Settings, *, create: Create = "if_configured") -> WarehouseEngine:
    """The configured warehouse; a missing DuckDB file is created only as `create` allows, so a
    command run in the wrong folder stops with one sentence instead of leaving an empty warehouse."""
    url = settings.warehouse.url
    scheme = urlparse(url).scheme
    if scheme == "duckdb":
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
    if scheme == "redshift":
        from ordertrack.warehouse.redshift_engine import RedshiftEngine

        return RedshiftEngine(settings, config.target.raw_schema, config.target.mart_schema)
    raise ConfigError(
        f"WAREHOUSE_URL scheme {scheme!r} is not supported: use duckdb:///path/to/file.duckdb or redshift://host:port/db."
    )
