"""Watermarks: how far each table's rows have been published, and where that is stored."""

from ordertrack.watermarks.model import Watermark, WatermarkStatus
from ordertrack.watermarks.store import WatermarkStore

__all__ = ["Watermark", "WatermarkStatus", "WatermarkStore"]
