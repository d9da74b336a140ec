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
    env_level = os.environ.get("ORDERTRACK_LOG_LEVEL", "INFO")
    level_name = (level or env_level).upper()
    renderer = _renderer(json)
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


def _renderer(json: bool | None = None):  # noqa: ANN202 - a structlog processor
    fmt = os.environ.get("ORDERTRACK_LOG_FORMAT")
    use_json = json if json is not None else (fmt == "json" or (fmt is None and not sys.stderr.isatty()))
    return structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


def route_library_logs(*names: str, level: int = logging.WARNING) -> None:
    """Show what libraries log through the stdlib (faust, mode, aiokafka) at `level` and above, as
    our own one-line events. They attach NullHandlers, which keep Python's last-resort handler
    quiet: without this a faust worker that crashes on start-up exits without a word."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, _renderer()],
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
    ))
    handler.setLevel(level)
    for name in names:
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        lg.setLevel(min(lg.level or level, level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
