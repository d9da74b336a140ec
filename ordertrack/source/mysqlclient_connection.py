"""The producer's source connection through mysqlclient, MySQL's C client library, when it is
installed (`pip install 'ordertrack[mysqlclient]'`; it builds against libmariadb-dev).

Why: pymysql parses the MySQL protocol in Python, and on a backfill that parsing is most of the
producer's time (the profile of `bench/end_to_end.py`'s (c): 9 of 12 s). The C client reads the
same keyset pages several times faster; measured figures are in `bench/README.md`.

What stays the same: the rows. Values are decoded by pymysql's own converters wherever the two
libraries differ (a zero date stays the text pymysql returns, where mysqlclient's converters return
None), so a window read either way publishes the same bytes
(`tests/core/source/test_mysqlclient_rows.py` holds the two drivers to that). Errors carry the
same numbers (`ordertrack.source.mysql_errors`).

What is narrower: TLS. MariaDB Connector/C checks the host name whenever it checks the
certificate, so it cannot do `verify_ca` as pymysql does; this first step takes the C client only
for connections without TLS (`MYSQL_SSL_MODE=disabled`, or a unix socket), and pymysql otherwise.
"""

from __future__ import annotations

from typing import Any

from pymysql import converters as pymysql_converters

from ordertrack.settings import MySQLSettings

try:
    import MySQLdb
    import MySQLdb.connections
    import MySQLdb.converters
    import MySQLdb.cursors
    from MySQLdb.constants import FIELD_TYPE
except ImportError:  # optional: pymysql reads then
    MySQLdb = None


def available() -> bool:
    """Whether mysqlclient is installed."""
    return MySQLdb is not None


def _conversions() -> dict[Any, Any]:
    conv = dict(MySQLdb.converters.conversions)
    conv.update({
        FIELD_TYPE.TIMESTAMP: pymysql_converters.convert_datetime,
        FIELD_TYPE.DATETIME: pymysql_converters.convert_datetime,
        FIELD_TYPE.DATE: pymysql_converters.convert_date,
        FIELD_TYPE.TIME: pymysql_converters.convert_timedelta,
    })  # (MySQL 8's JSON: mysqlclient decodes it as text itself, as pymysql does)
    return conv


def open_connection(cfg: MySQLSettings, *, read_timeout: int | None) -> Any:
    """A mysqlclient connection (autocommit) with the settings `ordertrack.source.connection.connect`
    gives pymysql; its errors are raised as they are, for the caller's one mapping."""
    kwargs: dict[str, Any] = {
        "user": cfg.user, "password": cfg.password.get_secret_value(), "database": cfg.database,
        "connect_timeout": 10, "charset": "utf8mb4", "autocommit": True, "conv": _conversions(),
    }
    if cfg.unix_socket:
        kwargs["unix_socket"] = cfg.unix_socket
    else:
        kwargs.update(host=cfg.host, port=cfg.port, ssl_mode="DISABLED")
    if read_timeout:
        kwargs["read_timeout"] = read_timeout
    conn = MySQLdb.connect(**kwargs)
    if cfg.init_command:
        # After connecting, as pymysql runs it: mysqlclient's own `init_command` runs before it sets
        # the character set and autocommit, which would then override what the command set.
        try:
            with conn.cursor() as cur:
                cur.execute(cfg.init_command)
                while cur.nextset():
                    pass
            conn.commit()
            conn.autocommit(True)
        except BaseException:
            conn.close()
            raise
    return conn


def is_connection(conn: Any) -> bool:
    return MySQLdb is not None and isinstance(conn, MySQLdb.connections.Connection)


def unbuffered_dicts(conn: Any, sql: str, params: tuple) -> list[dict[str, Any]]:
    """The rows of `sql` as dicts, streamed from the server (not held twice)."""
    with conn.cursor(MySQLdb.cursors.SSDictCursor) as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())
