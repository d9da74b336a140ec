from __future__ import annotations

import pytest

from ordertrack.config import load_pipeline_config
from ordertrack.tables import TableRegistry


@pytest.fixture
def registry() -> TableRegistry:
    return TableRegistry(load_pipeline_config())


def test_registry_derives_topic_raw_and_mart_names(registry):
    spath = registry.get("uni_tracking_spath")
    assert spath.topic == "kuaisong.uni_tracking_spath"
    assert (spath.raw_schema, spath.raw_table) == ("settlement_public", "uni_tracking_spath_raw")
    assert (spath.mart_schema, spath.mart_table) == ("settlement_ods", "mart_uni_tracking_spath")
    assert spath.page_order == ("pathTime", "id")
    assert spath.key_columns == ("order_id", "traceSeq")
    assert spath.source_full_name == "kuaisong.uni_tracking_spath"


def test_registry_keeps_config_order_and_selects(registry):
    assert registry.names() == ["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"]
    assert [s.name for s in registry.select(["uni_tracking_spath", "ecs_order_info"])] == [
        "ecs_order_info",
        "uni_tracking_spath",
    ]
    assert len(registry.select(None)) == 3


def test_unknown_table_names_the_configured_ones(registry):
    with pytest.raises(KeyError, match="configured tables: ecs_order_info, uni_tracking_info"):
        registry.get("orders")


def test_batch_size_falls_back_to_processing_default(registry):
    assert all(s.batch_size == 10000 for s in registry)
