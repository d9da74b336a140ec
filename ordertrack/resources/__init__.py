"""Files shipped with the package: the default pipeline config, the Kafka pom, server templates."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(name: str) -> Path:
    """Path of a file shipped in this package (installed editable or as a wheel)."""
    return Path(str(resources.files(__name__).joinpath(name)))


def resource_text(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
