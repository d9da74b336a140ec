"""State shared by all commands of one CLI invocation, loaded lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from ordertrack.config import PipelineConfig, load_pipeline_config
from ordertrack.settings import Settings, load_settings
from ordertrack.tables import TableRegistry


@dataclass
class CliState:
    config_path: Path | None = None
    _config: PipelineConfig | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def config(self) -> PipelineConfig:
        if self._config is None:
            self._config = load_pipeline_config(self.config_path)
        return self._config

    @property
    def settings(self) -> Settings:
        """Loaded at first use; a command relying on built-in defaults says so here, once."""
        if self._settings is None:
            self._settings = load_settings()
            notice = self._settings.fallback_notice()
            if notice:
                typer.secho(f"warning: {notice}", err=True, fg=typer.colors.YELLOW)
        return self._settings

    @property
    def registry(self) -> TableRegistry:
        return TableRegistry(self.config)
