"""What `connectors apply` checks on the source before Connect does, when it can log in as the
CDC account: the login, the grants Debezium needs, the binlog settings. Each problem is one
sentence with the fix; Connect's own messages (a Java stack trace) are the fallback."""

from __future__ import annotations

import re

import pymysql

from ordertrack.errors import SecurityError, ServiceUnavailableError
from ordertrack.settings import Settings
from ordertrack.source.cdc_account import CDC_PRIVILEGES
from ordertrack.source.connection import SourceUnreachableError, connect

# MySQL names the last one differently; MariaDB 10.5+ accepts REPLICATION CLIENT as an alias.
ALIASES = {"BINLOG MONITOR": ("BINLOG MONITOR", "REPLICATION CLIENT"), "REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA")}
BINLOG_SETTINGS = {"log_bin": "1", "binlog_format": "ROW", "binlog_row_image": "FULL"}


def _cdc_session(settings: Settings) -> pymysql.connections.Connection:
    """A session as the CDC account, where the Connect worker reaches the source, through the
    project's one MySQL connect (a refused login is a ServiceUnavailableError, an unanswered
    one a SourceUnreachableError, neither showing the password)."""
    c, m = settings.connect, settings.mysql
    where = m.model_copy(update={"host": c.mysql_host or m.host, "port": c.mysql_port or m.port, "unix_socket": None,
                                 "init_command": None})
    return connect(where, user=c.mysql_user, database="",
                   password=c.mysql_password.get_secret_value() if c.mysql_password else "")


def source_problems(settings: Settings, database: str, mariadb: bool) -> list[str]:
    """Sentences naming what to fix on the source; empty when Debezium can read it."""
    c = settings.connect
    try:
        conn = _cdc_session(settings)
    except (SourceUnreachableError, SecurityError):  # away (waited for), or TLS told in its own words
        raise
    except ServiceUnavailableError:  # the login was refused: something to fix, not to wait for
        host, port = c.mysql_host or settings.mysql.host, c.mysql_port or settings.mysql.port
        return [f"The CDC account {c.mysql_user!r} cannot log in to the source at {host}:{port}: wrong password "
                "(CDC_MYSQL_PASSWORD, which the Connect worker reads too) or no such account."]
    problems: list[str] = []
    with conn, conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(r[0].upper() for r in cur.fetchall())
        missing = [p for p in CDC_PRIVILEGES if not _granted(grants, p, database)]
        if missing:
            names = ", ".join(p if mariadb or p != "BINLOG MONITOR" else "REPLICATION CLIENT" for p in missing)
            why = "; ".join(f"{p}: {CDC_PRIVILEGES[p]}" for p in missing)
            problems.append(f"The CDC account {c.mysql_user!r} lacks {names} ({why}): GRANT {names} ON "
                            f"{'`' + database + '`.*' if missing == ['SELECT'] else '*.*'} TO {c.mysql_user!r}.")
        cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image')")
        have = {k: str(v).upper() for k, v in cur.fetchall()}
        for name, want in BINLOG_SETTINGS.items():
            value = have.get(name)
            if name == "log_bin" and value in ("ON", "1"):
                continue
            if value != want:
                problems.append(f"The source runs with {name}={value}; binlog CDC needs {name}={want if name != 'log_bin' else 'ON'} "
                                "(server option, then restart the server).")
    return problems


def binlog_head(settings: Settings) -> tuple[str, int] | None:
    """Where the source's binlog ends (SHOW MASTER STATUS as the CDC account), or None when the
    CDC password is not known here or the source does not let it in."""
    c = settings.connect
    if not (c.mysql_password and c.mysql_password.get_secret_value()):
        return None
    try:
        conn = _cdc_session(settings)
    except SecurityError:
        raise
    except ServiceUnavailableError:
        return None
    with conn, conn.cursor() as cur:
        for statement in ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"):  # MySQL 8.4+, then the rest
            try:
                cur.execute(statement)
            except pymysql.err.MySQLError:
                continue
            row = cur.fetchone()
            return (row[0], int(row[1])) if row else None
    return None


def behind(head: tuple[str, int] | None, position: dict | None) -> dict | None:
    """How far the connector's committed position is behind the binlog's end: bytes when both are
    in the same file, else the number of files between them."""
    if head is None or not position or "file" not in position:
        return None
    file, pos = position["file"], int(position.get("pos") or 0)
    if file == head[0]:
        return {"files": 0, "bytes": max(0, head[1] - pos)}
    try:
        files = int(head[0].rsplit(".", 1)[1]) - int(file.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        files = None
    return {"files": files, "bytes": None}


def _granted(grants: str, privilege: str, database: str) -> bool:
    if "ALL PRIVILEGES ON *.*" in grants:
        return True
    names = ALIASES.get(privilege, (privilege,))
    for g in re.findall(r"GRANT (.+?) ON (\S+) TO", grants):
        privileges, on = g
        scope_ok = on == "*.*" or (privilege == "SELECT" and on.strip("`").split("`.")[0].strip("`") == database.upper())
        if scope_ok and any(re.search(rf"(^|, ){re.escape(n)}(,|$)", privileges) for n in names):
            return True
    return False
