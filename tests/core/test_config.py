from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ordertrack.config import load_pipeline_config
from ordertrack.errors import ConfigError
from ordertrack.resources import resource_path


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _default() -> dict:
    return yaml.safe_load(resource_path("pipeline.yaml").read_text())


def test_default_config_has_the_three_tables_with_their_cursors():
    cfg = load_pipeline_config()
    assert [(t.name, t.timestamp_column, t.primary_key, t.cdc_id_column) for t in cfg.tables] == [
        ("ecs_order_info", "add_time", ("order_id",), "order_id"),
        ("uni_tracking_info", "update_time", ("order_id",), "order_id"),
        ("uni_tracking_spath", "pathTime", ("order_id", "traceSeq"), "id"),
    ]
    assert cfg.window_settings.lookback_minutes == 120
    assert cfg.window_settings.buffer_minutes == 5
    assert cfg.processing.max_parallel_tables == 3


def test_missing_field_names_the_field_and_the_file(tmp_path):
    data = _default()
    del data["tables"][2]["timestamp_column"]
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(p)
    assert str(p) in str(e.value)
    assert "tables[2].timestamp_column" in str(e.value)
    assert "Field required" in str(e.value)


def test_wrong_type_is_reported(tmp_path):
    data = _default()
    data["processing"]["batch_size"] = "lots"
    with pytest.raises(ConfigError, match=r"processing\.batch_size"):
        load_pipeline_config(_write(tmp_path, data))


def test_unknown_field_is_rejected(tmp_path):
    data = _default()
    data["window_settings"]["lookback_minuts"] = 10
    with pytest.raises(ConfigError, match=r"window_settings\.lookback_minuts"):
        load_pipeline_config(_write(tmp_path, data))


@pytest.mark.parametrize("bad", ["order-id", "1col", "x; DROP TABLE y", "a b", ""])
def test_identifiers_are_validated(tmp_path, bad):
    data = _default()
    data["tables"][0]["timestamp_column"] = bad
    with pytest.raises(ConfigError, match="not a valid identifier|at least"):
        load_pipeline_config(_write(tmp_path, data))


def test_table_outside_the_source_database_is_rejected(tmp_path):
    data = _default()
    data["tables"][0]["full_name"] = "otherdb.ecs_order_info"
    with pytest.raises(ConfigError, match="not in the source database kuaisong"):
        load_pipeline_config(_write(tmp_path, data))


def test_duplicate_tables_are_rejected(tmp_path):
    data = _default()
    data["tables"].append(dict(data["tables"][0]))
    with pytest.raises(ConfigError, match="listed twice: ecs_order_info"):
        load_pipeline_config(_write(tmp_path, data))


def test_timestamp_only_needs_a_single_unique_tiebreaker(tmp_path):
    data = _default()
    data["tables"][2]["cdc_strategy"] = "timestamp_only"
    with pytest.raises(ConfigError, match="timestamp_only needs"):
        load_pipeline_config(_write(tmp_path, data))


def test_missing_file_and_bad_yaml_are_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline_config(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("pipeline: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_pipeline_config(p)


def test_sub_window_limits_default_and_are_validated(tmp_path):
    cfg = load_pipeline_config()
    assert (cfg.window_settings.max_window_rows, cfg.window_settings.max_window_span_minutes) == (500_000, 60)
    for field, bad in (("max_window_rows", 0), ("max_window_rows", "many"), ("max_window_span_minutes", 0)):
        data = _default()
        data["window_settings"][field] = bad
        with pytest.raises(ConfigError, match=rf"window_settings\.{field}"):
            load_pipeline_config(_write(tmp_path, data))
    data = _default()
    data["window_settings"].update(max_window_rows=2000, max_window_span_minutes=15)
    tuned = load_pipeline_config(_write(tmp_path, data)).window_settings
    assert (tuned.max_window_rows, tuned.max_window_span_minutes) == (2000, 15)
