"""Connections to the source database, with one clear sentence when they fail."""

from __future__ import annotations

from typing import Any, cast

import pymysql
import pymysql.cursors

from ordertrack.errors import ServiceUnavailableError
from ordertrack.settings import MySQLSettings


class SourceUnreachableError(ServiceUnavailableError):
    """The source did not answer (down, restarting, out of connections): trying again later may
    work, where a refused login or a missing database would not."""


def one_row(cur: pymysql.cursors.Cursor) -> tuple[Any, ...]:
    """The row of a statement that always returns exactly one (an aggregate without GROUP BY,
    `SELECT VERSION()`): pymysql's stub types `fetchone()` Optional whatever the statement."""
    return cast("tuple[Any, ...]", cur.fetchone())


def connect(
    cfg: MySQLSettings,
    *,
    user: str | None = None,
    password: str | None = None,
    database: str | None = None,
    read_timeout: int | None = None,
    cursorclass: type = pymysql.cursors.Cursor,
    autocommit: bool = True,
) -> pymysql.connections.Connection:
    """Open a connection; raise ServiceUnavailableError naming host and user, never the password."""
    who = user or cfg.user
    where = cfg.unix_socket or f"{cfg.host}:{cfg.port}"
    try:
        return pymysql.connect(
            host=cfg.host,
            port=cfg.port,
            unix_socket=cfg.unix_socket,
            user=who,
            password=password if password is not None else cfg.password.get_secret_value(),
            database=database if database is not None else cfg.database,
            connect_timeout=10,
            read_timeout=read_timeout,
            charset="utf8mb4",
            cursorclass=cursorclass,
            autocommit=autocommit,
            init_command=cfg.init_command,
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        if code == 1045:
            raise ServiceUnavailableError(
                f"MySQL at {where} refused user {who!r}: check MYSQL_USER and MYSQL_PASSWORD."
            ) from None
        if code == 1049:
            raise ServiceUnavailableError(
                f"MySQL at {where} has no database {database or cfg.database!r}: check MYSQL_DATABASE."
            ) from None
        raise SourceUnreachableError(
            f"Cannot reach MySQL at {where} as {who!r} (error {code}): is it running? "
            "For the local stack run `ordertrack stack up`."
        ) from None
