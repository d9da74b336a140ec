"""Binlog CDC on the secured stack (`stack up --secure --connect`): the Kafka Connect worker over
SASL_SSL as its own principal `User:ordertrack-connect`, holding only what `topics acls --connect`
lists; Debezium reading MariaDB over verified TLS as a `REQUIRE SSL` account; the change events
landed by the pipeline's own principal over SASL_SSL; and no secret in what Connect stores or shows."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pymysql
import pytest
from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

from ordertrack.kafka.acls import connect_grants
from ordertrack.kafka.admin import KafkaAdmin
from ordertrack.resources import resource_path
from ordertrack.settings import KafkaSettings
from ordertrack.stack.connect import CONNECT_USER, GROUP_ID, SASL_PASSWORD_VAR, STORAGE_PREFIX, WORKER_SECRETS
from ordertrack.stack.mariadb import CDC_USER
from ordertrack.tables import cdc_topic_prefix
from tests.connectors.test_debezium import ORDER_COLS, TRACK_COLS, mart_rows, source_rows
from tests.support.kafka_source import db_now, insert
from tests.support.pipeline_env import Env, _env_factory
from tests.support.waits import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def secured_cdc(secure_stack_connect, tmp_path) -> Iterator[tuple[object, Env, pymysql.connections.Connection]]:
    """A Debezium pipeline of its own on the secured stack, its ACLs applied as an administrator
    would: the pipeline principal's and the Connect worker's, nothing else."""
    stack = secure_stack_connect
    plain = stack.env["KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"]
    admin = stack.stack.mariadb.admin_connect(database="kuaisong")
    drop_test_grants(stack)  # an earlier run's, should it have been cut short
    with _env_factory(admin, plain, tmp_path) as make:
        env = make(strategy="debezium")
        as_admin = {"KAFKA_BOOTSTRAP_SERVERS": plain, "ORDERTRACK_STATE_DIR": str(tmp_path)}
        for extra in ((), ("--connect",)):
            r = env.cli("topics", "acls", *extra, "--apply", "--json", **as_admin)
            assert r.returncode == 0, r.stderr
        try:
            yield stack, env, admin
        finally:
            env.cli("connectors", "delete", ORDERTRACK_STATE_DIR=str(stack.state_dir), timeout=60)
            heartbeat = f"__debezium-heartbeat.{cdc_topic_prefix(env.config)}"
            KafkaAdmin(KafkaSettings(bootstrap_servers=plain)).delete_topics([heartbeat])
            drop_test_grants(stack)
            drop_pipeline_grants(stack, env)
    admin.close()


def _bindings(stack) -> list:
    """Every ACL binding the broker holds for the Connect worker's principal."""
    client = stack.stack.kafka.admin()  # kept referenced until the future resolves
    return client.describe_acls(
        AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{CONNECT_USER}", None,
                         AclOperation.ANY, AclPermissionType.ANY), request_timeout=30).result(timeout=40)


def _key(b) -> tuple:
    return (b.restype, b.name, b.resource_pattern_type, b.operation, b.permission_type)


def stack_grants() -> set[tuple]:
    """What `stack up` grants the Connect worker: `connect_grants` of the default pipeline config."""
    from ordertrack.config import load_pipeline_config

    default = load_pipeline_config(resource_path("pipeline.yaml"))
    return {_key(g.binding(f"User:{CONNECT_USER}")) for g in connect_grants(default, GROUP_ID, STORAGE_PREFIX)}


def drop_test_grants(stack) -> None:
    """Remove the worker principal's grants beyond the stack's own (a test pipeline's)."""
    _local_admin(stack).delete_acls([b for b in _bindings(stack) if _key(b) not in stack_grants()])


def drop_pipeline_grants(stack, env: Env) -> None:
    """Remove what `topics acls --apply` granted the pipeline's principal for this test's pipeline
    (the stack's own grants, the default pipeline's, stay)."""
    from ordertrack.config import load_pipeline_config
    from ordertrack.kafka.acls import pipeline_acls

    keep = {_key(b) for b in pipeline_acls(load_pipeline_config(resource_path("pipeline.yaml")), "User:ordertrack")}
    _local_admin(stack).delete_acls([b for b in pipeline_acls(env.config, "User:ordertrack") if _key(b) not in keep])


def _local_admin(stack) -> KafkaAdmin:
    """The secured stack's administrator: its plaintext listener's principal is the super user."""
    return KafkaAdmin(KafkaSettings(bootstrap_servers=stack.env["KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"]))


def test_debezium_over_tls_lands_through_sasl_ssl_with_only_the_connect_grants(secured_cdc):
    stack, env, admin = secured_cdc
    state = {"ORDERTRACK_STATE_DIR": str(stack.state_dir)}
    assert stack.env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and stack.env["MYSQL_SSL_MODE"] == "verify_identity"

    # The worker is a SASL_SSL client as its own user; its properties hold a reference, no password.
    props = stack.stack.connect.props.read_text()
    assert f"bootstrap.servers={stack.env['KAFKA_BOOTSTRAP_SERVERS']}" in props
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert f"{prefix}security.protocol=SASL_SSL" in props and f"{prefix}ssl.truststore.type=PEM" in props
        assert f'{prefix}sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required ' \
               f'username="{CONNECT_USER}" password="${{env:{SASL_PASSWORD_VAR}}}";' in props
    # Least privilege: the worker's principal holds exactly the grants `connect_grants` derives
    # (the default pipeline's, which `stack up` applied, and this test's), nothing more.
    want = stack_grants() | {_key(g.binding(f"User:{CONNECT_USER}"))
                             for g in connect_grants(env.config, GROUP_ID, STORAGE_PREFIX)}
    assert {_key(b) for b in _bindings(stack)} == want

    # The CDC account is REQUIRE SSL: without TLS it is refused.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host="127.0.0.1", port=stack.layout.mariadb_port, user=CDC_USER,
                        password=stack.env["CDC_MYSQL_PASSWORD"], ssl_disabled=True, connect_timeout=5)
    assert refused.value.args[0] == 1045

    orders, tracking = f"`{env.db}`.ecs_order_info", f"`{env.db}`.uni_tracking_info"
    t = db_now(admin)
    insert(admin, orders, ORDER_COLS, [(i, f"SN{i}", 7, 1, t - 100, "1.00", "old") for i in range(1, 4)])
    insert(admin, tracking, TRACK_COLS, [(i, f"TN{i}", "SF", 1, t - 100, t - 100) for i in range(1, 4)])

    rendered = env.cli("connectors", "render", **state)
    assert rendered.returncode == 0, rendered.stderr
    config = json.loads(rendered.stdout)["config"]
    assert config["database.ssl.mode"] == "verify_identity"
    assert config["driver.serverSslCert"] == stack.env["MYSQL_SSL_CA"]
    assert config["database.ssl.truststore"] == stack.env["CONNECT_MYSQL_SSL_TRUSTSTORE"]
    assert config["database.ssl.truststore.password"] == "${env:CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD}"

    r = env.cli("connectors", "apply", "--json", **state)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    applied = json.loads(r.stdout)
    assert applied["created"] and applied["state"] == "RUNNING" and applied["source_checked"], applied

    with admin.cursor() as cur:  # streamed changes after the snapshot
        cur.execute(f"INSERT INTO {orders} (order_id, order_sn, partner_id, user_id, add_time, goods_amount, address) "
                    f"VALUES (4, 'SN4', 7, 1, {t}, 4.00, 'new')")
        cur.execute(f"UPDATE {orders} SET goods_amount = 2.50 WHERE order_id = 2")
        cur.execute(f"UPDATE {tracking} SET state = 2, update_time = {t + 5} WHERE order_id = 3")
        cur.execute(f"DELETE FROM {orders} WHERE order_id = 1")
    want_orders = source_rows(admin, env.db, "ecs_order_info", ("order_id", "goods_amount", "address"))
    want_tracking = source_rows(admin, env.db, "uni_tracking_info", ("order_id", "state", "update_time"))
    outputs = [r.stdout, r.stderr, rendered.stdout]

    def landed() -> bool:
        d = env.cli("consume", "--drain", "--json", **state)  # the pipeline's principal, over SASL_SSL
        outputs.extend([d.stdout, d.stderr])
        assert d.returncode == 0, d.stderr[-3000:]
        return (mart_rows(env, "ecs_order_info", ("order_id", "goods_amount", "address")) == want_orders
                and mart_rows(env, "uni_tracking_info", ("order_id", "state", "update_time")) == want_tracking)

    wait_until("the change events in the marts", landed, timeout=180, every=2)
    status = env.cli("connectors", "status", "--json", **state)
    assert status.returncode == 0 and json.loads(status.stdout)["binlog_position"]["file"], status.stdout
    outputs += [status.stdout, status.stderr]

    # What Connect stores and shows holds references, never a password.
    with urllib.request.urlopen(f"{stack.stack.connect.url}/connectors/{env.config.cdc.connector}/config",
                                timeout=10) as resp:
        shown = resp.read().decode()
    assert json.loads(shown)["database.password"] == "${env:CDC_MYSQL_PASSWORD}"
    worker_log = (stack.stack.connect.dir / "logs" / "stdout.log").read_text(errors="replace")
    secrets = [stack.env[v] for v in (*WORKER_SECRETS, "KAFKA_SASL_PASSWORD", "MYSQL_PASSWORD") if stack.env.get(v)]
    assert len(secrets) == 5
    for secret in secrets:
        for text in (shown, props, worker_log, *outputs):
            assert secret not in text
