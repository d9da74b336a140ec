"""Test helpers of the producer tests: settings `make_env` has no knob for (not tests themselves)."""

from __future__ import annotations

import dataclasses

import yaml

from ordertrack.config import PipelineConfig
from ordertrack.settings import load_settings
from ordertrack.watermarks.model import Watermark
from producers.runner import watermark_store


def retune(env, *, window: dict | None = None, kafka: dict | None = None):
    """`env` with some window_settings / kafka fields changed, in its config file and object."""
    raw = yaml.safe_load(env.config_path.read_text())
    raw["window_settings"].update(window or {})
    raw["kafka"].update(kafka or {})
    env.config_path.write_text(yaml.safe_dump(raw))
    return dataclasses.replace(env, config=PipelineConfig.model_validate(raw))


def set_watermark(env, table: str, position: int) -> None:
    """Move the live watermark as an operator would (`watermarks set`)."""
    watermark_store(env.config, load_settings()).write([Watermark(table=table, position=position, status="set")])


def live_position(env, table: str) -> int | None:
    mark = watermark_store(env.config, load_settings()).latest().get(table)
    return None if mark is None else mark.position
