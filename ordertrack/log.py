"""Structured logging: one JSON event per line on stderr (or key=value on a terminal).

Secrets never reach here: settings hold them as `SecretStr`, which renders as '**********'.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(level: str | None = None, json: bool | None = None) -> None:
    """Set up structlog once per process; `ORDERTRACK_LOG_LEVEL` / `ORDERTRACK_LOG_FORMAT` override."""
    level_name = (level or os.environ.get("ORDERTRACK_LOG_LEVEL", "INFO")).upper()
    fmt = os.environ.get("ORDERTRACK_LOG_FORMAT")
    use_json = json if json is not None else (fmt == "json" or (fmt is None and not sys.stderr.isatty()))
    renderer = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level_name)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
