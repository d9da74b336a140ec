"""Exceptions the CLI turns into one plain sentence and a non-zero exit.

Terminal errors (bad config, missing tool, wrong credentials) are never retried;
`TransientError` marks the ones a retry may cure (a service still starting).
"""

from __future__ import annotations


class OrdertrackError(Exception):
    """A failure whose message is one sentence a person can act on."""

    exit_code: int = 1


class ConfigError(OrdertrackError):
    """The pipeline YAML or the environment is wrong; the message names the field and the file."""

    exit_code = 2


class MissingToolError(OrdertrackError):
    """A program the local stack needs (java, mvn, mariadbd) is not installed."""

    exit_code = 3


class ServiceUnavailableError(OrdertrackError):
    """A service (Kafka, MariaDB, the warehouse) cannot be reached."""

    exit_code = 4


class TransientError(OrdertrackError):
    """A failure a retry may cure."""
