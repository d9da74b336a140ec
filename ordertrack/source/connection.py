"""Connections to the source database, with one clear sentence when they fail."""

from __future__ import annotations

import ssl
from typing import Any, cast

import pymysql
import pymysql.cursors

from ordertrack.errors import ConfigError, SecurityError, ServiceUnavailableError
from ordertrack.settings import MySQLSettings
from ordertrack.tls import TlsFailure, client_context, tls_failure


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
    try:
        return pymysql.connect(
            **_tls(cfg),
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
        kind = _tls_kind(exc, cfg)
        if kind is not None:
            raise SecurityError(_tls_sentence(kind, cfg, _where(cfg))) from None
        raise _refused(exc, cfg, who, database) from None


def reader_driver(cfg: MySQLSettings) -> str:
    """Which library the producer reads the source with (`MYSQL_DRIVER`): mysqlclient when asked
    for, or under auto when it is installed and these settings use no TLS; else pymysql."""
    from ordertrack.source import mysqlclient_connection as fast

    if cfg.driver == "mysqlclient":
        if not fast.available():
            raise ConfigError(
                "MYSQL_DRIVER=mysqlclient but mysqlclient is not installed: pip install 'ordertrack[mysqlclient]' "
                "(it builds against libmariadb-dev and pkg-config), or set MYSQL_DRIVER=auto.")
        return "mysqlclient"
    if cfg.driver == "auto" and fast.available() and not cfg.tls:
        return "mysqlclient"
    return "pymysql"


def connect_reader(cfg: MySQLSettings, *, read_timeout: int | None = None) -> Any:
    """The producer's source connection: `reader_driver`'s library, the same rows and errors either
    way (`ordertrack.source.mysqlclient_connection`). Its errors are caught with
    `mysql_errors.SOURCE_ERRORS`."""
    if reader_driver(cfg) == "pymysql":
        return connect(cfg, read_timeout=read_timeout)
    from ordertrack.source import mysqlclient_connection as fast

    try:
        return fast.open_connection(cfg, read_timeout=read_timeout)
    except fast.MySQLdb.OperationalError as exc:
        raise _refused(exc, cfg, cfg.user, None) from None


def unbuffered_dicts(conn: Any, sql: str, params: tuple) -> list[dict[str, Any]]:
    """The rows of `sql` as dicts, streamed from the server (not held twice), through whichever
    library `conn` (from `connect_reader`) belongs to."""
    from ordertrack.source import mysqlclient_connection as fast

    if fast.is_connection(conn):
        return fast.unbuffered_dicts(conn, sql, params)
    # Not in a `with` block: when the connection dies mid-page, pymysql closes its socket and the
    # cursor's close (which reads what is left of the result) fails with AttributeError, which
    # would replace the lost connection's error and turn an outage into a failed window.
    cur = conn.cursor(pymysql.cursors.SSDictCursor)
    try:
        cur.execute(sql, params)
        page = list(cur.fetchall_unbuffered())
    except BaseException:
        try:
            cur.close()
        except Exception:  # the first error is the one to report
            # The half-read result would try again when collected and print a raw traceback.
            result = getattr(cur, "_result", None)
            if result is not None:
                result.unbuffered_active = False
        raise
    cur.close()
    return page


def _where(cfg: MySQLSettings) -> str:
    return cfg.unix_socket or f"{cfg.host}:{cfg.port}"


def _refused(exc: Exception, cfg: MySQLSettings, who: str, database: str | None) -> ServiceUnavailableError:
    """The one sentence for a connection either driver could not open (the same error numbers)."""
    code = exc.args[0] if exc.args else None
    where = _where(cfg)
    if code == 1045:
        tls = " (an account that requires TLS is refused without it: check MYSQL_SSL_MODE too)" \
            if cfg.ssl_mode == "disabled" and not cfg.unix_socket else ""
        return ServiceUnavailableError(
            f"MySQL at {where} refused user {who!r}: check MYSQL_USER and MYSQL_PASSWORD{tls}.")
    if code == 1049:
        return ServiceUnavailableError(
            f"MySQL at {where} has no database {database or cfg.database!r}: check MYSQL_DATABASE.")
    return SourceUnreachableError(
        f"Cannot reach MySQL at {where} as {who!r} (error {code}): is it running? "
        "For the local stack run `ordertrack stack up`.")


def _tls(cfg: MySQLSettings) -> dict[str, Any]:
    """pymysql's TLS arguments for `MYSQL_SSL_MODE`. A context passed as `ssl` makes pymysql
    refuse a server without TLS instead of going on in plaintext (its default, like MySQL's
    PREFERRED, would). A unix socket is local: TLS over it protects nothing, and servers count a
    socket as secure transport."""
    if not cfg.tls:
        return {"ssl_disabled": True}
    verify = cfg.ssl_mode in ("verify_ca", "verify_identity")
    try:
        ctx = client_context(cfg.ssl_ca, verify=verify, check_hostname=cfg.ssl_mode == "verify_identity",
                             cert=cfg.ssl_cert, key=cfg.ssl_key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        what = "MYSQL_SSL_CERT / MYSQL_SSL_KEY" if cfg.ssl_cert and "ca" not in str(exc).lower() else "MYSQL_SSL_CA"
        raise SecurityError(f"The MySQL TLS files could not be read ({type(exc).__name__}: "
                            f"{getattr(exc, 'strerror', None) or exc}): check {what}.") from None
    return {"ssl": ctx}


def _tls_kind(exc: pymysql.err.OperationalError, cfg: MySQLSettings) -> TlsFailure | None:
    """The TLS failure behind a failed connect, judged from the TLS layer's own error (pymysql
    keeps it as `original_exception`), never from the message, which names the host. A handshake
    cut short (EOF, reset: a server restarting, a proxy with nothing behind it) is an outage."""
    if not cfg.tls:
        return None
    code = exc.args[0] if exc.args else None
    if code == 2026:  # pymysql: "SSL is required but the server doesn't support it"
        return "not_tls"
    cause = getattr(exc, "original_exception", None) or exc.__context__
    if not isinstance(cause, ssl.SSLError) or isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return None
    text = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or str(cause)
    return tls_failure(str(text)) or "other"


def _tls_sentence(kind: TlsFailure, cfg: MySQLSettings, where: str) -> str:
    ca = f"MYSQL_SSL_CA ({cfg.ssl_ca})" if cfg.ssl_ca else "the system's CAs (MYSQL_SSL_CA is not set)"
    return {
        "not_tls": f"MySQL at {where} does not offer TLS, and MYSQL_SSL_MODE={cfg.ssl_mode} requires it: enable TLS on "
                   "the server, or set MYSQL_SSL_MODE=disabled for a server reached only over a trusted network "
                   "(nothing falls back to plaintext by itself).",
        "expired": f"MySQL at {where} presented an expired (or not yet valid) certificate: renew the server's "
                   "certificate; MYSQL_SSL_MODE=verify_ca or verify_identity refuses it.",
        "wrong_host": f"MySQL at {where} presented a certificate that does not name {cfg.host}: connect by a name "
                      "it carries (MYSQL_HOST), or set MYSQL_SSL_MODE=verify_ca to check the CA only.",
        "untrusted": f"MySQL at {where} presented a certificate that {ca} does not verify: check MYSQL_SSL_CA.",
        "client_cert": f"MySQL at {where} refused the TLS handshake without a client certificate it accepts: "
                       "check MYSQL_SSL_CERT and MYSQL_SSL_KEY.",
        "other": f"The TLS handshake with MySQL at {where} failed: check MYSQL_SSL_MODE, MYSQL_SSL_CA, "
                 "MYSQL_SSL_CERT and MYSQL_SSL_KEY.",
    }[kind]
