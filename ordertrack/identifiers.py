"""Identifier checks: table and column names come from config and catalogs, never from data.

Every name that reaches SQL passes `validate_identifier` first and is then quoted by the
engine-specific helper; values always travel as query parameters.
"""

from __future__ import annotations

import re

# Letters, digits and underscore, starting with a letter or underscore, at most 127 chars
# (Redshift's limit, the strictest of our engines).
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,126}$")


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` unchanged if it is a safe SQL identifier, else raise ValueError."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid identifier "
            "(letters, digits and underscores, starting with a letter, at most 127 characters)"
        )
    return name


def quote_mysql(name: str) -> str:
    """Back-quote a validated identifier for MySQL/MariaDB."""
    return f"`{validate_identifier(name)}`"


def quote_ansi(name: str) -> str:
    """Double-quote a validated identifier for DuckDB and Redshift."""
    return f'"{validate_identifier(name)}"'
