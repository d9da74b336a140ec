"""ordertrack: a streaming change-data pipeline for order tracking tables."""

__version__ = "0.1.0"
