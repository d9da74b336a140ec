"""Checks of the warehouse: its URL (offline) and whether it answers (online).

A DuckDB file is only opened read-only and never created: a typo in `WAREHOUSE_URL` must show
up here as a missing folder, not as a new empty warehouse.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlparse

from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError, OrdertrackError, ServiceUnavailableError, as_service_error
from ordertrack.preflight.findings import Finding, error, unreachable, warning
from ordertrack.settings import Settings
from ordertrack.warehouse.factory import engine_type

DUCKDB_LOCK_WAIT_SECONDS = 5.0


def safe_url(url: str) -> str:
    """The URL without any `user:password@` part, for output."""
    u = urlparse(url)
    if u.username is None and u.password is None:
        return url
    return u._replace(netloc=(u.hostname or "") + (f":{u.port}" if u.port else "")).geturl()


def duckdb_path(url: str) -> str:
    # SQLAlchemy's rule, as the engine factory reads it: duckdb:///relative, duckdb:////absolute.
    return url.removeprefix("duckdb:///")


def url_findings(config: PipelineConfig, settings: Settings) -> list[Finding]:
    """What is wrong with `WAREHOUSE_URL` on its own, and against `target.type`; pure."""
    url = settings.warehouse.url
    try:
        kind = engine_type(config, settings)
    except ConfigError as exc:
        return [error("warehouse", "warehouse.url", str(exc))]
    if kind == "duckdb" and not duckdb_path(url):
        return [error("warehouse", "warehouse.url",
                      "WAREHOUSE_URL names no DuckDB file: use duckdb:///path/to/file.duckdb.")]
    return []


def _creatable(path: Path) -> bool:
    """Whether the first landing can create `path`: its nearest existing folder is writable."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def check_duckdb(path: Path) -> list[Finding]:
    import duckdb

    if not path.exists():
        if _creatable(path):
            return []  # the first landing creates it
        return [error("warehouse", "warehouse.connect",
                      f"The DuckDB warehouse {path} does not exist and its folder cannot be created or written: "
                      "fix WAREHOUSE_URL or the folder's permissions.")]
    deadline = time.monotonic() + DUCKDB_LOCK_WAIT_SECONDS
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
            try:
                con.execute("SELECT 1").fetchall()
            finally:
                con.close()
            return []
        except duckdb.IOException as exc:
            # Workers open the file per unit of work, so a lock is usually released within moments.
            if "lock" in str(exc).lower() and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if "lock" in str(exc).lower():
                return [warning("warehouse", "warehouse.connect",
                                f"The DuckDB warehouse {path} stayed locked by another process for "
                                f"{DUCKDB_LOCK_WAIT_SECONDS:.0f} s: landing waits while it is held, so find the "
                                "process if this persists.")]
            return [error("warehouse", "warehouse.connect",
                          f"The DuckDB warehouse {path} cannot be opened ({str(exc).splitlines()[0]}): fix "
                          "WAREHOUSE_URL or the file.")]
        except duckdb.Error as exc:
            return [error("warehouse", "warehouse.connect",
                          f"{path} is not a DuckDB database this version can open ({str(exc).splitlines()[0]}): "
                          "point WAREHOUSE_URL at the pipeline's warehouse file.")]


def check_remote(config: PipelineConfig, settings: Settings) -> list[Finding]:
    from ordertrack.warehouse.factory import open_engine

    try:
        engine = open_engine(config, settings)
    except ServiceUnavailableError as exc:
        return [unreachable("warehouse", "warehouse.connect", str(exc))]
    except OrdertrackError as exc:  # missing Redshift settings
        return [error("warehouse", "warehouse.settings", str(exc))]
    try:
        engine.query("SELECT 1")
    except ServiceUnavailableError as exc:
        return [unreachable("warehouse", "warehouse.connect", str(exc))]
    except Exception as exc:  # the drivers raise unrelated types
        service = as_service_error(exc)
        if service is None:
            raise
        return [unreachable("warehouse", "warehouse.connect", str(service))]
    finally:
        engine.close()
    return []


def check_warehouse(config: PipelineConfig, settings: Settings) -> list[Finding]:
    """Online: the warehouse answers. Run only when `url_findings` found no error."""
    url = settings.warehouse.url
    if urlparse(url).scheme == "duckdb":
        return check_duckdb(Path(duckdb_path(url)))
    return check_remote(config, settings)
