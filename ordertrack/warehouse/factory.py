"""The warehouse engine named by `WAREHOUSE_URL`."""

from __future__ import annotations

from urllib.parse import urlparse

from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError
from ordertrack.settings import Settings
from ordertrack.warehouse.engine import WarehouseEngine


def open_engine(config: PipelineConfig, settings: Settings) -> WarehouseEngine:
    url = settings.warehouse.url
    scheme = urlparse(url).scheme
    if scheme == "duckdb":
        from ordertrack.warehouse.duckdb_engine import DuckDBEngine

        # SQLAlchemy's rule: duckdb:///relative/path, duckdb:////absolute/path.
        path = url.removeprefix("duckdb:///")
        if not path:
            raise ConfigError("WAREHOUSE_URL names no DuckDB file: use duckdb:///path/to/file.duckdb.")
        return DuckDBEngine(path, config.target.raw_schema, config.target.mart_schema)
    if scheme == "redshift":
        from ordertrack.warehouse.redshift_engine import RedshiftEngine

        return RedshiftEngine(settings, config.target.raw_schema, config.target.mart_schema)
    raise ConfigError(
        f"WAREHOUSE_URL scheme {scheme!r} is not supported: use duckdb:///path/to/file.duckdb or redshift://host:port/db."
    )
