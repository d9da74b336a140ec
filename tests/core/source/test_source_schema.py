"""The source schema and the accounts `stack up` creates, checked on the real MariaDB."""

from __future__ import annotations

import pymysql
import pytest

from ordertrack.source.connection import connect
from ordertrack.source.writer import open_workload_connection

pytestmark = pytest.mark.integration


def _indexes(cur, table: str) -> dict[str, list[str]]:
    cur.execute(
        "SELECT index_name, column_name FROM information_schema.statistics "
        "WHERE table_schema = 'kuaisong' AND table_name = %s ORDER BY index_name, seq_in_index",
        (table,),
    )
    out: dict[str, list[str]] = {}
    for name, col in cur.fetchall():
        out.setdefault(name, []).append(col)
    return out


def test_tables_keys_and_cursor_indexes(mariadb_admin):
    with mariadb_admin.cursor() as cur:
        assert _indexes(cur, "ecs_order_info")["PRIMARY"] == ["order_id"]
        assert _indexes(cur, "ecs_order_info")["idx_add_time"] == ["add_time", "order_id"]
        assert _indexes(cur, "uni_tracking_info")["idx_update_time"] == ["update_time", "order_id"]
        spath = _indexes(cur, "uni_tracking_spath")
        assert spath["PRIMARY"] == ["id"]
        assert spath["uk_order_trace"] == ["order_id", "traceSeq"]
        assert spath["idx_path_time"] == ["pathTime", "id"]
        cur.execute(
            "SELECT extra FROM information_schema.columns WHERE table_schema='kuaisong' "
            "AND table_name='uni_tracking_spath' AND column_name='id'"
        )
        assert cur.fetchone()[0] == "auto_increment"


def test_binlog_is_ready_for_cdc(mariadb_admin):
    with mariadb_admin.cursor() as cur:
        cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id")
        assert cur.fetchone() == (1, "ROW", "FULL", 1)


def test_pipeline_user_reads_but_cannot_write(settings):
    with connect(settings.mysql) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM uni_tracking_spath")
        assert cur.fetchone()[0] >= 0
        # PROCESS lets the poller see open transactions that would commit behind its window.
        cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx")
        with pytest.raises(pymysql.err.OperationalError) as e:
            cur.execute("INSERT INTO ecs_order_info (order_id, order_sn, partner_id, user_id, add_time) VALUES (1, 'x', 1, 1, 1)")
        assert e.value.args[0] == 1142  # INSERT command denied
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("CREATE TABLE kuaisong.nope (x INT)")
        cur.execute("SHOW GRANTS")
        grants = " ".join(r[0] for r in cur.fetchall())
        assert "ALL PRIVILEGES" not in grants


def test_workload_user_writes_only_the_source(settings):
    with open_workload_connection(settings) as conn, conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute(
            "INSERT INTO ecs_order_info (order_id, order_sn, partner_id, user_id, add_time) "
            "VALUES (1, 'grant-test', 1, 1, 1)"
        )
        cur.execute("ROLLBACK")
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("SELECT * FROM mysql.user")


def test_wrong_password_is_one_clear_sentence(settings):
    from pydantic import SecretStr

    from ordertrack.errors import ServiceUnavailableError

    bad = settings.mysql.model_copy(update={"password": SecretStr("wrong-pass-123")})
    with pytest.raises(ServiceUnavailableError) as e:
        connect(bad)
    assert "check MYSQL_USER and MYSQL_PASSWORD" in str(e.value)
    assert "wrong-pass-123" not in str(e.value)
