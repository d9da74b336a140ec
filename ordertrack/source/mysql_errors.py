"""What a MySQL/MariaDB error means to the caller: the connection is gone, a grant is missing, or
the statement may simply be tried again.

pymysql maps most server errors to `OperationalError` whatever they mean (a killed query and a
missing privilege look alike), so callers decide by the error number, never by the class. The
producer's reads may go through mysqlclient instead (`ordertrack.source.mysqlclient_connection`):
its errors carry the same numbers in the same place, and `SOURCE_ERRORS` catches either driver's.
"""

from __future__ import annotations

import pymysql

try:
    import MySQLdb
except ImportError:  # the optional C driver (`pip install 'ordertrack[mysqlclient]'`)
    MySQLdb = None

SOURCE_ERRORS: tuple[type[Exception], ...] = (
    (pymysql.err.MySQLError,) if MySQLdb is None else (pymysql.err.MySQLError, MySQLdb.MySQLError))
"""Every error either source driver raises: catch this, never one driver's class."""

_CLOSED: tuple[type[Exception], ...] = (
    (pymysql.err.InterfaceError,) if MySQLdb is None else (pymysql.err.InterfaceError, MySQLdb.InterfaceError))

REFUSED: tuple[type[Exception], ...] = (
    (pymysql.err.OperationalError, *_CLOSED) if MySQLdb is None else (pymysql.err.OperationalError, MySQLdb.OperationalError, *_CLOSED))
"""What either driver raises when the server refused a statement or the connection is gone."""

CONNECTION_LOST = frozenset({
    1053,  # ER_SERVER_SHUTDOWN: the server is shutting down
    1927,  # ER_CONNECTION_KILLED (MariaDB): KILL of this connection
    2002,  # CR_CONNECTION_ERROR: the socket is not there
    2003,  # CR_CONN_HOST_ERROR: nothing listens on host:port
    2006,  # CR_SERVER_GONE_ERROR
    2013,  # CR_SERVER_LOST: lost connection during a query
    2055,  # CR_SERVER_LOST_EXTENDED
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8.0.24+): idle connection closed by the server
})
"""The connection is unusable: open a new one (and redo what it was doing)."""

NO_PRIVILEGE = frozenset({
    1044,  # ER_DBACCESS_DENIED_ERROR
    1142,  # ER_TABLEACCESS_DENIED_ERROR
    1143,  # ER_COLUMNACCESS_DENIED_ERROR
    1227,  # ER_SPECIFIC_ACCESS_DENIED_ERROR: "you need (at least one of) the PROCESS privilege(s)"
})
"""The user lacks a grant: asking again gives the same answer until an administrator acts."""

SYNTAX_ERROR = 1064  # ER_PARSE_ERROR: e.g. `SHOW SLAVE STATUS` on MySQL 8.4


def error_code(exc: BaseException) -> int | None:
    """The server's (or client library's) error number of a source driver's error, else None."""
    if isinstance(exc, SOURCE_ERRORS) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def error_text(exc: BaseException) -> str:
    """`<number>: <message>` of a source driver's error, for one-sentence reports."""
    code = error_code(exc)
    msg = str(exc.args[-1]) if getattr(exc, "args", None) else str(exc)
    return f"{code}: {msg}" if code is not None else (msg or type(exc).__name__)


def connection_lost(exc: BaseException) -> bool:
    """True when the connection that raised `exc` cannot be used again."""
    # InterfaceError: the client already knows the connection is closed ("(0, '')").
    if isinstance(exc, _CLOSED):
        return True
    return error_code(exc) in CONNECTION_LOST


def privilege_missing(exc: BaseException) -> bool:
    return error_code(exc) in NO_PRIVILEGE


def syntax_error(exc: BaseException) -> bool:
    return error_code(exc) == SYNTAX_ERROR
