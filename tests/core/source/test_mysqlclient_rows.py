"""The producer's two source drivers, pymysql and mysqlclient, read the same rows and publish the
same bytes, and fail the same way: checked on the real MariaDB."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from ordertrack.settings import MySQLSettings
from ordertrack.source import mysqlclient_connection as fast
from ordertrack.source.connection import connect_reader, reader_driver
from ordertrack.source.mysql_errors import SOURCE_ERRORS, connection_lost
from ordertrack.tables import TableSpec
from producers.outage import as_outage
from producers.reader import WindowReader
from producers.rows import BadRow, encode_row
from tests.conftest import service_missing

pytestmark = pytest.mark.integration

# Every column type a source table may carry, and the values where decoders tend to differ.
COLUMNS = """
  id INT NOT NULL PRIMARY KEY, t BIGINT NOT NULL,
  i8 TINYINT, b1 TINYINT(1), i16 SMALLINT, i24 MEDIUMINT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
  dec_ DECIMAL(30,8), f FLOAT, d DOUBLE, bits BIT(10),
  dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts3 TIMESTAMP(3) NULL DEFAULT NULL, tm TIME(6), yr YEAR,
  ch CHAR(5), vc VARCHAR(64), tx TEXT, bin BINARY(4), vb VARBINARY(16), bl BLOB,
  en ENUM('a','b','ü'), st SET('x','y','z'), js JSON
"""
ROWS = [
    "(1, 100, -128, 1, -32768, 16777215, -9223372036854775808, 18446744073709551615, "
    "-1234567890123456789012.12345678, 1.5, -2.2250738585072014e-308, b'1010101010', "
    "'2026-02-28', '2026-12-07 21:00:00', '2026-12-07 21:00:00.000001', '2026-12-07 21:00:00.500', "
    "'-838:59:59.000000', 2155, 'ab', 'ünï 包裹 📦', REPEAT('x', 3000), 'a\\0b\\0', X'00FF', X'C3A9', "
    "'ü', 'x,z', '{\"k\": [1, \"包\"], \"n\": null}')",
    # zero dates (pymysql hands them over as text, and the producer publishes that text)
    "(2, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'0', '0000-00-00', '0000-00-00 00:00:00', "
    "'2026-00-00 00:00:00', NULL, '00:00:00', 0, '', '', '', X'', X'', X'', '', '', '[]')",
    "(3, 101, " + ", ".join(["NULL"] * 25) + ")",  # NULL everywhere but the keys
    "(4, 102, 127, 9, 32767, 0, 9223372036854775807, 1, 0.00000001, 3.4e38, 1e308, b'1111111111', "
    "'9999-12-31', '9999-12-31 23:59:59', '1000-01-01 00:00:00.999999', '2038-01-19 03:14:07.999', "
    "'838:59:59.999999', 1901, 'zzzzz', 'tab\\tline\\nquote\"', '', X'FFFFFFFF', X'80', X'FF', 'b', 'y', '\"text\"')",
    "(5, 103, 1, 1, 1, 1, 1, 1, 1, 1, 1, b'1', '2026-01-01', '2026-01-01 00:00:00', "
    "'2026-01-01 00:00:00.1', '2026-01-01 00:00:00.010', '-00:00:01.5', 2026, 'x', 'x', 'x', X'01', X'01', "
    "X'01', 'a', 'x,y,z', '1.5e300')",
]


def _need_mysqlclient() -> None:
    if not fast.available():
        service_missing("mysqlclient (pip install 'ordertrack[mysqlclient]'; `make setup` installs it)")


@pytest.fixture(scope="module")
def mixed_table(mariadb_admin) -> Any:
    name = f"driver_rows_{uuid.uuid4().hex[:8]}"
    with mariadb_admin.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # zero dates, as an old application may have written them
        cur.execute(f"CREATE TABLE kuaisong.{name} ({COLUMNS})")
        cur.execute(f"INSERT INTO kuaisong.{name} VALUES {', '.join(ROWS)}")
    mariadb_admin.commit()
    yield name
    with mariadb_admin.cursor() as cur:
        cur.execute(f"DROP TABLE kuaisong.{name}")


def _spec(name: str) -> TableSpec:
    return TableSpec(name=name, database="kuaisong", cursor_column="t", key_columns=("id",), id_column="id",
                     topic="unused", raw_schema="raw", raw_table=name, mart_schema="mart", mart_table=name, batch_size=2)


def _read(mysql: MySQLSettings, driver: str, name: str) -> list[dict[str, Any]]:
    conn = connect_reader(mysql.model_copy(update={"driver": driver}), read_timeout=30)
    try:
        assert type(conn).__module__.split(".")[0] == {"pymysql": "pymysql", "mysqlclient": "MySQLdb"}[driver]
        reader = WindowReader(conn, _spec(name), page_size=2)  # three pages: the keyset goes on twice
        reader.begin_snapshot()
        rows = [row for page in reader.pages(0, 1000) for row in page]
        reader.end_snapshot()
        return rows
    finally:
        conn.close()


def test_both_drivers_read_the_same_values_and_publish_the_same_bytes(settings, mixed_table):
    _need_mysqlclient()
    by_pymysql = _read(settings.mysql, "pymysql", mixed_table)
    by_mysqlclient = _read(settings.mysql, "mysqlclient", mixed_table)
    assert [r["id"] for r in by_pymysql] == [1, 2, 3, 4, 5]
    assert [[(k, type(v), v) for k, v in r.items()] for r in by_mysqlclient] == \
        [[(k, type(v), v) for k, v in r.items()] for r in by_pymysql]
    spec = _spec(mixed_table)
    published = [[encode_row(spec, r) for r in rows] for rows in (by_pymysql, by_mysqlclient)]
    assert published[0] == published[1]
    # The zero dates stay text either way; a BLOB that is not UTF-8 is a bad row either way.
    assert by_mysqlclient[1]["dt"] == "0000-00-00" and by_mysqlclient[1]["dtm"] == "0000-00-00 00:00:00"
    assert isinstance(published[1][0], BadRow) and isinstance(published[1][3], BadRow)


def test_a_killed_mysqlclient_connection_is_a_source_outage(settings, mariadb_admin, mixed_table):
    _need_mysqlclient()
    conn = connect_reader(settings.mysql.model_copy(update={"driver": "mysqlclient"}), read_timeout=30)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (conn_id,) = cur.fetchone()
        with mariadb_admin.cursor() as cur:
            cur.execute(f"KILL CONNECTION {int(conn_id)}")
        reader = WindowReader(conn, _spec(mixed_table), page_size=2)
        with pytest.raises(SOURCE_ERRORS) as failed:
            list(reader.pages(0, 1000))
        assert connection_lost(failed.value)
        outage = as_outage(failed.value, "a test window")
        assert outage is not None and outage.service == "source"
        reader.end_snapshot_quietly()  # the lost connection has no snapshot left: quiet
    finally:
        conn.close()


@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_a_connection_killed_mid_page_is_a_source_outage(settings, mariadb_admin, driver):
    """Killed while a page streams (not between pages): the lost connection's own error comes out,
    not one from closing the half-read result."""
    _need_mysqlclient()
    conn = connect_reader(settings.mysql.model_copy(update={"driver": driver}), read_timeout=30)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (conn_id,) = cur.fetchone()
        reader = WindowReader(conn, _spec("unused"), page_size=100)
        # A page that takes 4 s to stream (MariaDB's sequence engine, a pause per row).
        reader._first = ("SELECT seq AS t, seq AS id, REPEAT('x', 100000) AS r, SLEEP(0.1) AS s "
                         "FROM seq_1_to_40 WHERE seq >= %s AND seq < %s")
        killer = threading.Timer(1.0, lambda: _kill(mariadb_admin, conn_id))
        killer.start()
        try:
            with pytest.raises(SOURCE_ERRORS) as failed:
                list(reader.pages(0, 1000))
        finally:
            killer.join()
        assert connection_lost(failed.value), repr(failed.value)
        outage = as_outage(failed.value, "a test window")
        assert outage is not None and outage.service == "source"
    finally:
        try:
            conn.close()
        except Exception:  # noqa: S110 - already closed by the kill
            pass


def _kill(admin: Any, conn_id: int) -> None:
    with admin.cursor() as cur:
        cur.execute(f"KILL CONNECTION {int(conn_id)}")


def test_init_command_has_the_last_word_with_either_driver(settings):
    _need_mysqlclient()
    seen = []
    for driver in ("pymysql", "mysqlclient"):
        mysql = settings.mysql.model_copy(update={
            "driver": driver, "init_command": "SET time_zone = '+08:00', collation_connection = utf8mb4_unicode_ci"})
        conn = connect_reader(mysql)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@time_zone, @@collation_connection, @@autocommit")
                seen.append(tuple(cur.fetchone()))
        finally:
            conn.close()
    assert seen == [("+08:00", "utf8mb4_unicode_ci", 1)] * 2


def test_a_refused_login_is_one_sentence_with_either_driver(settings):
    _need_mysqlclient()
    for driver in ("pymysql", "mysqlclient"):
        wrong = settings.mysql.model_copy(update={"driver": driver, "password": SecretStr("not-the-password")})
        with pytest.raises(Exception) as refused:
            connect_reader(wrong)
        assert "refused user" in str(refused.value) and "not-the-password" not in str(refused.value)


def test_auto_reads_with_the_c_client_only_where_no_tls_is_asked_for(monkeypatch):
    _need_mysqlclient()
    for name in ("MYSQL_DRIVER", "MYSQL_UNIX_SOCKET", "MYSQL_SSL_MODE", "MYSQL_SSL_CA", "MYSQL_SSL_CERT", "MYSQL_SSL_KEY"):
        monkeypatch.delenv(name, raising=False)  # the settings below say all that matters
    assert reader_driver(MySQLSettings(ssl_mode="disabled")) == "mysqlclient"
    assert reader_driver(MySQLSettings(ssl_mode="required", unix_socket="/run/mysqld.sock")) == "mysqlclient"
    assert reader_driver(MySQLSettings(ssl_mode="required")) == "pymysql"
    assert reader_driver(MySQLSettings(ssl_mode="verify_ca", ssl_ca="/ca.pem")) == "pymysql"
    assert reader_driver(MySQLSettings(ssl_mode="disabled", driver="pymysql")) == "pymysql"
    with pytest.raises(ValueError, match="MYSQL_DRIVER=mysqlclient reads without TLS only"):
        MySQLSettings(ssl_mode="required", driver="mysqlclient")
