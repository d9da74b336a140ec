"""The watermark store contract. The Kafka compacted topic is the default implementation."""

from __future__ import annotations

from typing import Protocol

from ordertrack.watermarks.model import Watermark


class WatermarkStore(Protocol):
    def latest(self) -> dict[str, Watermark]:
        """The newest committed watermark of every table that has one; called at the start of a cycle."""

    def write(self, marks: list[Watermark]) -> None:
        """Move watermarks outside a window (seed, set, import), atomically for all of them."""
