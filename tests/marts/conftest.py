"""The fixture the mart tests share: a warehouse with the three raw tables, on each executing
engine (DuckDB, PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.marts.test_merge import COLUMNS, ORDERS, SPATH, TRACKING
from tests.support.warehouses import ENGINES, open_warehouse


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    with open_warehouse(request.param, tmp_path) as e:
        for spec in (SPATH, TRACKING, ORDERS):
            e.ensure_raw_table(spec, COLUMNS[spec.name])
        yield e
