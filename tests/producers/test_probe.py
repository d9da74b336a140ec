"""The source probe (clock, open transactions, replica lag) against a fake cursor that raises
each error a server can answer: only a missing grant switches a probe off."""

from __future__ import annotations

import pymysql
import pytest
from structlog.testing import capture_logs

from ordertrack.errors import TransientError
from producers.reader import SourceProbe

NOW = 1_800_000_000.25
TRX = "information_schema.innodb_trx"


def op(code: int, msg: str = "") -> pymysql.err.OperationalError:
    return pymysql.err.OperationalError(code, msg)


def syntax() -> pymysql.err.ProgrammingError:
    # What pymysql raises for ER_PARSE_ERROR, e.g. SHOW SLAVE STATUS on MySQL 8.4.
    return pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax")


class FakeConn:
    """Answers by statement: a value (rows, with column names for SHOW), or an exception to raise.
    `answers[stmt]` may be a list, consumed one call at a time."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.executed: list[str] = []

    def cursor(self):
        return FakeCursor(self)


class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn
        self.rows: list[tuple] = []
        self.description: list[tuple] | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql: str, params=None) -> None:
        key = "clock" if "NOW(6)" in sql else "trx" if TRX in sql else sql
        self.conn.executed.append(key)
        answer = self.conn.answers[key]
        if isinstance(answer, list):
            answer = answer.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, dict):  # SHOW ... STATUS: {"cols": [...], "rows": [...]}
            self.description = [(c,) for c in answer["cols"]]
            self.rows = list(answer["rows"])
        else:
            self.description = [("v",)]
            self.rows = [(answer,)]

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return list(self.rows)


def replica(col: str, lag) -> dict:
    return {"cols": ["Slave_IO_State", col], "rows": [("Waiting", lag)]}


NOT_A_REPLICA = {"cols": ["Slave_IO_State"], "rows": []}


def conn(trx=None, replica_status=NOT_A_REPLICA, slave_status=NOT_A_REPLICA) -> FakeConn:
    return FakeConn({"clock": NOW, "trx": trx, "SHOW REPLICA STATUS": replica_status, "SHOW SLAVE STATUS": slave_status})


def test_the_clock_the_oldest_open_transaction_and_no_replica():
    clock, drift = SourceProbe().read(conn(trx=NOW - 40))
    assert (clock.db_now, clock.oldest_open_trx_start, clock.replica_lag_seconds) == (int(NOW), int(NOW - 40), None)
    assert isinstance(drift, float)


@pytest.mark.parametrize("code", [1227, 1142, 1143, 1044])
def test_a_missing_privilege_switches_the_hold_off_with_one_warning(code):
    probe = SourceProbe()
    c = conn(trx=op(code, "Access denied; you need (at least one of) the PROCESS privilege(s)"))
    with capture_logs() as logs:
        clock, _ = probe.read(c)
        again, _ = probe.read(c)
    assert clock.oldest_open_trx_start is None and again.oldest_open_trx_start is None
    assert c.executed.count("trx") == 1  # not asked again
    assert [e["event"] for e in logs].count("producer.no_open_transaction_view") == 1


@pytest.mark.parametrize("code", [
    1317,  # ER_QUERY_INTERRUPTED: KILL QUERY
    3024,  # ER_QUERY_TIMEOUT: MySQL max_execution_time
    1969,  # ER_STATEMENT_TIMEOUT: MariaDB max_statement_time
    1205,  # ER_LOCK_WAIT_TIMEOUT
    1213,  # ER_LOCK_DEADLOCK
    1040,  # ER_CON_COUNT_ERROR
])
def test_a_transient_probe_error_fails_the_window_and_keeps_the_hold(code):
    probe = SourceProbe()
    c = conn(trx=[op(code, "Query execution was interrupted"), NOW - 5])
    with pytest.raises(TransientError, match=rf"open transactions could not be read \({code}: .*next cycle"):
        probe.read(c)
    assert probe.open_transactions_visible
    clock, _ = probe.read(c)  # the next window asks again, and holds
    assert clock.oldest_open_trx_start == int(NOW - 5)


@pytest.mark.parametrize("exc", [
    op(2013, "Lost connection to MySQL server during query"),
    op(2006, "MySQL server has gone away"),
    op(1927, "Connection was killed"),
    pymysql.err.InterfaceError(0, ""),
])
def test_a_lost_connection_is_raised_as_it_is_and_keeps_the_hold(exc):
    probe = SourceProbe()
    with pytest.raises(type(exc)):
        probe.read(conn(trx=exc))
    assert probe.open_transactions_visible


def test_mysql_8_4_has_only_show_replica_status():
    probe = SourceProbe()
    c = conn(replica_status=replica("Seconds_Behind_Source", 7), slave_status=syntax())
    clock, _ = probe.read(c)
    assert clock.replica_lag_seconds == 7
    assert probe.replica_statement == "SHOW REPLICA STATUS"
    probe.read(c)
    assert "SHOW SLAVE STATUS" not in c.executed


def test_mariadb_answers_show_replica_status_with_master_columns():
    clock, _ = SourceProbe().read(conn(replica_status=replica("Seconds_Behind_Master", 3)))
    assert clock.replica_lag_seconds == 3


def test_older_servers_fall_back_to_show_slave_status_and_remember_it():
    probe = SourceProbe()
    c = conn(replica_status=syntax(), slave_status=replica("Seconds_Behind_Master", 12))
    assert probe.read(c)[0].replica_lag_seconds == 12
    assert probe.replica_statement == "SHOW SLAVE STATUS"
    c.executed.clear()
    assert probe.read(c)[0].replica_lag_seconds == 12
    assert "SHOW REPLICA STATUS" not in c.executed  # the working syntax is remembered


def test_the_largest_lag_of_several_channels_and_a_stopped_one_warns():
    status = {"cols": ["Channel_Name", "Seconds_Behind_Source"], "rows": [("a", 4), ("b", 30), ("c", None)]}
    with capture_logs() as logs:
        clock, _ = SourceProbe().read(conn(replica_status=status))
    assert clock.replica_lag_seconds == 30
    assert "producer.replica_not_replicating" in [e["event"] for e in logs]


def test_replica_status_without_the_grant_is_switched_off_once():
    probe = SourceProbe()
    c = conn(replica_status=op(1227, "Access denied; you need (at least one of) the SLAVE MONITOR privilege(s)"))
    with capture_logs() as logs:
        probe.read(c)
        probe.read(c)
    assert not probe.replica_status_visible
    assert c.executed.count("SHOW REPLICA STATUS") == 1 and "SHOW SLAVE STATUS" not in c.executed
    assert [e["event"] for e in logs].count("producer.no_replica_status") == 1


def test_a_transient_replica_status_error_fails_the_window_and_keeps_the_probe():
    probe = SourceProbe()
    c = conn(replica_status=[op(1205, "Lock wait timeout exceeded"), replica("Seconds_Behind_Master", 2)])
    with pytest.raises(TransientError, match="replica status could not be read"):
        probe.read(c)
    assert probe.replica_status_visible and probe.read(c)[0].replica_lag_seconds == 2


def test_a_server_that_knows_neither_statement_is_said_once():
    probe = SourceProbe()
    c = conn(replica_status=syntax(), slave_status=syntax())
    with capture_logs() as logs:
        assert probe.read(c)[0].replica_lag_seconds is None
        probe.read(c)
    assert not probe.replica_status_visible
    assert [e["event"] for e in logs].count("producer.no_replica_status") == 1
