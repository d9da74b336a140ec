"""Binlog CDC on the real Kafka Connect, Debezium and MariaDB: the connector applied from the
pipeline YAML, its change events landed by the same drain into the same raw tables, the marts
kept by binlog position (issue 12)."""

from __future__ import annotations

import json

import pytest

from ordertrack.settings import KafkaSettings, load_settings
from tests.support.kafka_source import db_now, insert
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration

ORDER_COLS = ("order_id", "order_sn", "partner_id", "user_id", "add_time", "goods_amount", "address")
TRACK_COLS = ("order_id", "tracking_number", "carrier_code", "state", "add_time", "update_time")


def source_rows(admin, db: str, table: str, columns: tuple[str, ...]) -> dict:
    with admin.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM `{db}`.`{table}`")
        return {r[0]: tuple(str(v) for v in r[1:]) for r in cur.fetchall()}


def mart_rows(env, table: str, columns: tuple[str, ...]) -> dict:
    spec = env.spec(table)
    engine = env.engine()
    try:
        rows = engine.query(f"SELECT {', '.join(f'CAST({c} AS VARCHAR)' for c in columns)} "
                            f"FROM {spec.mart_schema}.{spec.mart_table}")
    except Exception:  # the mart is created by the first landing
        return {}
    finally:
        engine.close()
    return {int(r[0]): tuple(str(v) for v in r[1:]) for r in rows}


def test_snapshot_inserts_updates_and_deletes_reach_the_marts_by_binlog_order(make_env, mariadb_admin, connect_url):
    env = make_env(strategy="debezium")
    orders, tracking = f"`{env.db}`.ecs_order_info", f"`{env.db}`.uni_tracking_info"
    t = db_now(mariadb_admin)
    insert(mariadb_admin, orders, ORDER_COLS, [(i, f"SN{i}", 7, 1, t - 100, "1.00", "old") for i in range(1, 6)])
    insert(mariadb_admin, tracking, TRACK_COLS, [(i, f"TN{i}", "SF", 1, t - 100, t - 100) for i in range(1, 6)])

    r = env.cli("connectors", "apply", "--json")
    assert r.returncode == 0, r.stderr
    applied = json.loads(r.stdout)
    assert applied["created"] and applied["state"] == "RUNNING" and applied["source_checked"], applied
    again = env.cli("connectors", "apply", "--json", "--wait", "0")  # idempotent: nothing to change
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] == {}, again.stdout + again.stderr

    with mariadb_admin.cursor() as cur:
        cur.execute(f"INSERT INTO {orders} (order_id, order_sn, partner_id, user_id, add_time, goods_amount, address) "
                    f"VALUES (6, 'SN6', 7, 1, {t}, 6.00, 'new'), (7, 'SN7', 7, 1, {t}, 7.00, 'new')")
        cur.execute(f"UPDATE {orders} SET goods_amount = 2.50 WHERE order_id = 2")
        # Two updates of one row in one second, the later one with an OLDER cursor (a writer's
        # clock went back): by cursor the first would win; the binlog says the second came later.
        cur.execute(f"UPDATE {tracking} SET state = 2, update_time = {t + 5} WHERE order_id = 3")
        cur.execute(f"UPDATE {tracking} SET state = 3, update_time = {t + 4} WHERE order_id = 3")
        cur.execute(f"DELETE FROM {orders} WHERE order_id = 4")
        cur.execute(f"DELETE FROM {tracking} WHERE order_id = 4")

    want_orders = source_rows(mariadb_admin, env.db, "ecs_order_info", ("order_id", "goods_amount", "address"))
    want_tracking = source_rows(mariadb_admin, env.db, "uni_tracking_info", ("order_id", "state", "update_time"))
    assert 4 not in want_orders and want_tracking[3] == ("3", str(t + 4))

    deletes = {"ecs_order_info": 0, "uni_tracking_info": 0}

    def marts_equal_source() -> bool:
        r = env.cli("consume", "--drain", "--json")
        assert r.returncode == 0, r.stderr
        for t in json.loads(r.stdout):  # the landing figures count the deletes among the rows landed
            if t["table"] in deletes:
                deletes[t["table"]] += t["deletes"]
        return (mart_rows(env, "ecs_order_info", ("order_id", "goods_amount", "address")) == want_orders
                and mart_rows(env, "uni_tracking_info", ("order_id", "state", "update_time")) == want_tracking)

    wait_until("the marts to equal the source", marts_equal_source, timeout=180, every=2)
    assert deletes == {"ecs_order_info": 1, "uni_tracking_info": 1}, deletes

    engine = env.engine()
    spec = env.spec("ecs_order_info")
    ops = dict(engine.query(f"SELECT cdc_op, COUNT(*) FROM {spec.raw_schema}.{spec.raw_table} GROUP BY cdc_op"))
    repeated = engine.query(f"SELECT COUNT(*) - COUNT(DISTINCT (_kafka_partition, _kafka_offset)) "
                            f"FROM {spec.raw_schema}.{spec.raw_table}")[0][0]
    engine.close()
    # every change once: 5 snapshot reads, 2 inserts, 1 update, 1 delete (a delete is a row, a tombstone is not)
    assert ops == {"r": 5, "c": 2, "u": 1, "d": 1} and repeated == 0, ops
    for table in ("ecs_order_info", "uni_tracking_info"):
        rec = env.cli("dq", "reconcile", "--table", table, "--until", "2100-01-01T00:00:00Z", "--json")
        assert rec.returncode == 0, (table, rec.stdout, rec.stderr)  # a key deleted in both is consistent
        carried = env.cli("dq", "reconcile", "--table", table, "--json")  # bound: the newest merged change
        assert carried.returncode == 0 and json.loads(carried.stdout)["until_from"] == "carried", carried.stdout
    dq = env.cli("dq", "run", "--json")  # no watermark is not stale for a Debezium table; extraction says so
    assert dq.returncode == 0, dq.stdout + dq.stderr
    extraction = next(c for c in json.loads(dq.stdout)["checks"] if c["check"] == "extraction")
    assert all("binlog CDC" in d["note"] for d in extraction["details"]), extraction

    status = env.cli("connectors", "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["binlog_position"]["file"], status.stdout
    # The poller has nothing to publish: `produce` says so, `run-once` only lands.
    produce = env.cli("produce", "--once")
    assert produce.returncode == 2 and "cdc_strategy: debezium" in produce.stderr, produce.stderr
    once = env.cli("run-once", "--json")
    assert once.returncode == 0, once.stderr
    assert {t["table"]: t["produce_status"] for t in json.loads(once.stdout)["tables"]} == dict.fromkeys(
        ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath"), "binlog CDC")


@pytest.fixture
def cdc_account(mariadb_admin):
    """A second CDC account (name, password) the test grants as it likes; dropped afterwards."""
    import uuid

    name = f"cdc_{uuid.uuid4().hex[:6]}"
    password = load_settings().connect.mysql_password.get_secret_value()  # the Connect worker's
    with mariadb_admin.cursor() as cur:
        cur.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (password,))
    yield name, password
    with mariadb_admin.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")


def test_a_missing_grant_or_a_wrong_password_is_one_sentence_naming_the_fix(make_env, mariadb_admin, connect_url,
                                                                          cdc_account):
    env = make_env(strategy="debezium")
    user, password = cdc_account
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT ON `{env.db}`.* TO '{user}'@'%'")
        cur.execute(f"GRANT RELOAD, BINLOG MONITOR ON *.* TO '{user}'@'%'")  # no REPLICATION SLAVE
    r = env.cli("connectors", "apply", CONNECT_MYSQL_USER=user)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "lacks REPLICATION SLAVE" in r.stderr and f"GRANT REPLICATION SLAVE ON *.* TO '{user}'" in r.stderr, r.stderr

    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'")
        cur.execute(f"ALTER USER '{user}'@'%%' IDENTIFIED BY %s", (password + "-changed",))
    # Where `apply` runs with the password, it says so itself ...
    r = env.cli("connectors", "apply", CONNECT_MYSQL_USER=user)
    assert r.returncode == 2 and "cannot log in" in r.stderr and "CDC_MYSQL_PASSWORD" in r.stderr, r.stderr
    # ... and where it does not, Connect's validation (Debezium logging in) refuses it: one sentence.
    r = env.cli("connectors", "apply", CONNECT_MYSQL_USER=user, CDC_MYSQL_PASSWORD="")
    assert r.returncode == 2 and r.stderr.count("error:") == 1, r.stderr
    assert "Access denied" in r.stderr and user in r.stderr, r.stderr
    for out in (r.stdout, r.stderr):
        assert password not in out
    assert env.cli("connectors", "status").returncode == 1  # nothing was created


def test_sigkill_of_the_connect_worker_under_live_writes_loses_and_repeats_no_change(
        make_env, mariadb_admin, connect_url, stack, settings, tmp_path):
    """Exactly-once source support: the events and the connector's binlog position commit in one
    Kafka transaction, so a worker killed in the middle of the workload's multi-row transactions
    resumes without a gap and without sending a change twice."""
    import os
    import signal
    import subprocess

    from ordertrack.stack.envfile import read_env
    from tests.consumers.test_worker import stop
    from tests.support.pipeline_env import ORDERTRACK

    env = make_env(strategy="debezium", buffer_minutes=0)
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO '{settings.workload.user}'@'%'")
    assert env.cli("connectors", "apply").returncode == 0
    log = open(tmp_path / "generate.log", "w")
    writer = subprocess.Popen([ORDERTRACK, "--config", str(env.config_path), "generate", "--live", "--duration", "10m",
                               "--orders-per-minute", "3000", "--scan-interval-minutes", "0.2"],
                              stdout=log, stderr=log, env={**os.environ, **env.env_vars, "MYSQL_DATABASE": env.db})
    spec = env.spec("uni_tracking_info")

    def events() -> int:
        from tests.support.kafka_source import high_watermarks

        return sum(high_watermarks(env.bootstrap, spec.topic).values())

    try:
        wait_until("change events to flow", lambda: events() > 300, timeout=120, every=1)
        pid = stack.connect.running_pid()
        os.kill(pid, signal.SIGKILL)
        wait_until("the Connect worker to be gone", lambda: stack.connect.running_pid() is None, timeout=30)
        killed_at = events()
        stack.connect.up(read_env(stack.layout.env_file))
        wait_until("the connector to run again and carry new changes",
                   lambda: env.cli("connectors", "status").returncode == 0 and events() > killed_at + 300,
                   timeout=180, every=2)
    finally:
        stop(writer)
    assert writer.returncode == 0, (tmp_path / "generate.log").read_text()[-2000:]

    def carried_all() -> bool:
        r = env.cli("consume", "--drain")
        assert r.returncode == 0, r.stderr
        return all(env.cli("dq", "reconcile", "--table", t, "--until", "2100-01-01T00:00:00Z").returncode == 0
                   for t in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath"))

    wait_until("every table to reconcile clean", carried_all, timeout=300, every=3)
    engine = env.engine()
    for table in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath"):
        s = env.spec(table)
        keys = ", ".join(s.key_columns)
        total, changes = engine.query(
            f"SELECT COUNT(*), COUNT(DISTINCT (cdc_file, cdc_pos, cdc_row, {keys})) FROM {s.raw_schema}.{s.raw_table}")[0]
        assert total == changes, f"{table}: {total - changes} change(s) landed twice after the SIGKILL"
    engine.close()


def test_a_column_added_while_streaming_and_a_primary_key_change(make_env, mariadb_admin, connect_url):
    env = make_env(strategy="debezium")
    orders = f"`{env.db}`.ecs_order_info"
    t = db_now(mariadb_admin)
    insert(mariadb_admin, orders, ORDER_COLS, [(i, f"SN{i}", 7, 1, t, "1.00", "a") for i in range(1, 4)])
    assert env.cli("connectors", "apply").returncode == 0
    with mariadb_admin.cursor() as cur:
        cur.execute(f"ALTER TABLE {orders} ADD COLUMN coupon VARCHAR(16) NULL")
        cur.execute(f"INSERT INTO {orders} (order_id, order_sn, partner_id, user_id, add_time, goods_amount, address, coupon) "
                    f"VALUES (4, 'SN4', 7, 1, {t}, 4.00, 'b', 'WINTER')")
        # A key change is a delete of the old key and a create of the new one.
        cur.execute(f"UPDATE {orders} SET order_id = 30 WHERE order_id = 3")
    want = source_rows(mariadb_admin, env.db, "ecs_order_info", ("order_id", "address", "coupon"))
    assert set(want) == {1, 2, 4, 30}

    def landed() -> bool:
        r = env.cli("consume", "--drain")
        assert r.returncode == 0, r.stderr
        return mart_rows(env, "ecs_order_info", ("order_id", "address", "coupon")) == want

    wait_until("the new column and the moved key in the mart", landed, timeout=180, every=2)
    spec = env.spec("ecs_order_info")
    engine = env.engine()
    ops = engine.query(f"SELECT order_id, cdc_op FROM {spec.raw_schema}.{spec.raw_table} "
                       "WHERE order_id IN (3, 30) AND cdc_op <> 'r' ORDER BY _kafka_offset")
    engine.close()
    assert sorted(ops) == [(3, "d"), (30, "c")], ops

    def state() -> str:
        return json.loads(env.cli("connectors", "status", "--json").stdout)["state"]

    def connector_finding() -> tuple[int, list]:
        dq = env.cli("dq", "run", "--check", "freshness", "--json")
        found = [d.get("connector_down") for c in json.loads(dq.stdout)["checks"] for d in c["details"]]
        return dq.returncode, found

    for verb, reached in (("pause", "PAUSED"), ("resume", "RUNNING"), ("restart", "RUNNING")):
        r = env.cli("connectors", verb, "--json")
        assert r.returncode == 0 and json.loads(r.stdout) == {"connector": env.config.cdc.connector, "requested": verb}
        wait_until(f"the connector {reached} after {verb}", lambda reached=reached: state() == reached, timeout=60)
        if reached == "PAUSED":  # dq sees a connector that carries nothing, for every Debezium table
            code, found = connector_finding()
            assert code == 1 and len(found) == 3 and all("PAUSED" in (f or "") for f in found), found
    assert connector_finding() == (0, [None, None, None])  # running again: the findings resolve themselves
    r = env.cli("connectors", "delete", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["deleted"] is True
    assert env.cli("connectors", "pause").returncode == 2  # no connector: one sentence, exit 2


def test_switching_from_the_poller_to_debezium_under_load_loses_and_repeats_nothing(
        make_env, mariadb_admin, connect_url, settings, tmp_path):
    """The documented switch (README, "Choosing a source"): apply the connector with the tables
    set to `cdc_strategy: debezium` (its snapshot copies every row at a binlog position, then it
    streams), stop the producer, land what it published on the old config, then run the worker on
    the new config. The poller's last windows and the change events overlap; the marts keep one
    row per key either way."""
    import os
    import subprocess

    import yaml

    from tests.consumers.test_worker import stop
    from tests.support.pipeline_env import ORDERTRACK

    env = make_env(buffer_minutes=1)
    with mariadb_admin.cursor() as cur:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{env.db}`.* TO '{settings.workload.user}'@'%'")
        cur.execute(f"GRANT SELECT ON `{env.db}`.* TO 'ordertrack_cdc'@'%'")
    raw = yaml.safe_load(env.config_path.read_text())
    for t in raw["tables"]:
        t["cdc_strategy"] = "debezium"
    raw["cdc"] = {"connector": f"{env.db}-cdc", "server_id": 200_000 + int(env.db[3:], 16) % 1_000_000_000}
    switched = tmp_path / "switched.yaml"
    switched.write_text(yaml.safe_dump(raw))
    env_vars = {**os.environ, **env.env_vars, "MYSQL_DATABASE": env.db}
    procs: list[subprocess.Popen] = []

    def start(config, name: str, *args: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "a")
        proc = subprocess.Popen([ORDERTRACK, "--config", str(config), *args], stdout=log, stderr=log, env=env_vars)
        procs.append(proc)
        return proc

    def cli(config, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ORDERTRACK, "--config", str(config), *args], capture_output=True, text=True,
                              timeout=300, env=env_vars)

    writer = start(env.config_path, "generate", "generate", "--live", "--duration", "10m", "--orders-per-minute", "1200",
                   "--scan-interval-minutes", "0.2")
    producer = start(env.config_path, "producer", "produce", "--every", "2s")
    worker = start(env.config_path, "worker", "consume")
    try:
        wait_until("the poller's rows in the marts", lambda: mart_rows(env, "ecs_order_info", ("order_id", "address")),
                   timeout=180, every=2)
        assert cli(switched, "topics", "create").returncode == 0
        r = cli(switched, "connectors", "apply")
        assert r.returncode == 0, r.stdout + r.stderr
        for proc in (producer, worker):
            stop(proc)
        # What the poller published is landed on the old YAML: the new worker reads only the new topics.
        assert cli(env.config_path, "consume", "--drain").returncode == 0
        assert cli(env.config_path, "marts", "run").returncode == 0
        start(switched, "worker", "consume")
        wait_until("change events landing", lambda: cli(switched, "lag").returncode == 0 and mart_rows(
            env, "ecs_order_info", ("order_id", "address")), timeout=120, every=2)
    finally:
        stop(writer)
        for proc in procs[1:]:
            if proc.poll() is None:
                stop(proc)
    try:
        def clean() -> bool:
            assert cli(switched, "consume", "--drain").returncode == 0
            return all(cli(switched, "dq", "reconcile", "--table", t, "--until", "2100-01-01T00:00:00Z").returncode == 0
                       for t in ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath"))

        wait_until("every table to reconcile clean after the switch", clean, timeout=300, every=3)
    finally:
        from ordertrack.config import load_pipeline_config
        from ordertrack.kafka.admin import KafkaAdmin
        from ordertrack.tables import TableRegistry

        cli(switched, "connectors", "delete")
        KafkaAdmin(KafkaSettings(bootstrap_servers=env.bootstrap)).delete_topics([s.topic for s in TableRegistry(load_pipeline_config(switched))])
