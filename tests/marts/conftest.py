"""The fixture the mart tests share: a DuckDB warehouse with the three raw tables."""

from __future__ import annotations

import pytest

from ordertrack.warehouse.duckdb_engine import DuckDBEngine
from tests.marts.test_merge import COLUMNS, ORDERS, SPATH, TRACKING


@pytest.fixture
def engine(tmp_path) -> DuckDBEngine:
    e = DuckDBEngine(tmp_path / "w.duckdb")
    for spec in (SPATH, TRACKING, ORDERS):
        e.ensure_raw_table(spec, COLUMNS[spec.name])
    return e
