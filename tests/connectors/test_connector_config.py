"""The connector configuration generated from the pipeline YAML (pure: nothing is sent)."""

from __future__ import annotations

import pytest
import yaml

from connectors.debezium import connector_config
from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError
from ordertrack.resources import resource_path
from ordertrack.settings import ConnectSettings, MySQLSettings, Settings


def config(strategies: dict[str, str]) -> PipelineConfig:
    raw = yaml.safe_load(resource_path("pipeline.yaml").read_text())
    for t in raw["tables"]:
        t["cdc_strategy"] = strategies.get(t["full_name"].split(".")[1], t["cdc_strategy"])
    return PipelineConfig.model_validate(raw)


def settings(mysql: str | None = "db.internal", **connect) -> Settings:
    return Settings.model_construct(
        mysql=MySQLSettings.model_construct(host=mysql or "mysql.internal", port=3306),
        connect=ConnectSettings.model_construct(**{"url": "http://c:8083", "schema_history_dir": "/var/lib/cdc",
                                                   "mysql_host": None, "mysql_port": None,
                                                   "mysql_user": "ordertrack_cdc",
                                                   "mysql_password_ref": "${env:CDC_MYSQL_PASSWORD}", **connect}))


def test_only_the_debezium_tables_with_the_secret_as_a_reference():
    out = connector_config(config({"uni_tracking_spath": "debezium"}), settings(mysql_password="s3cret-value"))
    assert out["table.include.list"] == r"kuaisong\.uni_tracking_spath"
    assert out["database.password"] == "${env:CDC_MYSQL_PASSWORD}" and "s3cret-value" not in str(out)
    assert (out["database.hostname"], out["database.port"], out["connector.adapter"]) == ("db.internal", "3306", "mariadb")
    assert out["tombstones.on.delete"] == "false" and out["decimal.handling.mode"] == "string"
    assert out["transforms.route.replacement"] == "kuaisong.cdc.$1"  # the topic the registry names
    assert out["schema.history.internal.file.filename"] == "/var/lib/cdc/ordertrack-cdc.dat"


def test_no_debezium_table_or_no_history_folder_is_one_sentence():
    with pytest.raises(ConfigError, match="No table has `cdc_strategy: debezium`"):
        connector_config(config({}), settings())
    with pytest.raises(ConfigError, match="CONNECT_SCHEMA_HISTORY_DIR"):
        connector_config(config({"ecs_order_info": "debezium"}), settings(schema_history_dir=None))


def test_the_example_in_the_repository_is_what_render_makes():
    """connectors/examples/ shows a reader the connector the shipped YAML makes with every table on
    Debezium; this keeps it true."""
    import json
    from pathlib import Path

    example = json.loads((Path(__file__).parents[2] / "connectors" / "examples" / "ordertrack-cdc.mariadb.json").read_text())
    cfg = config({"ecs_order_info": "debezium", "uni_tracking_info": "debezium", "uni_tracking_spath": "debezium"})
    s = settings(mysql=None, schema_history_dir="/var/lib/kafka-connect/history",
                 mysql_ssl_truststore="/var/lib/kafka-connect/mysql-truststore.p12",
                 mysql_ssl_truststore_password_ref="${env:CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD}")
    s.mysql = MySQLSettings.model_construct(host="mysql.internal", port=3306, ssl_mode="verify_identity",
                                            ssl_ca="/etc/ssl/mysql/ca.pem")
    rendered = connector_config(cfg, s)
    assert example == {"name": cfg.cdc.connector, "config": rendered}


def test_a_password_where_a_reference_belongs_is_refused_without_showing_it():
    with pytest.raises(ConfigError) as err:
        connector_config(config({"ecs_order_info": "debezium"}), settings(mysql_password_ref="hunter2-literal"))
    assert "hunter2" not in str(err.value) and "${env:CDC_MYSQL_PASSWORD}" in str(err.value)
    ok = connector_config(config({"ecs_order_info": "debezium"}), settings(mysql_password_ref="${file:/etc/cdc.properties:pw}"))
    assert ok["database.password"] == "${file:/etc/cdc.properties:pw}"


def tls(mode: str, **connect) -> Settings:
    s = settings(**connect)
    s.mysql = MySQLSettings.model_construct(host="db.internal", port=3306, ssl_mode=mode, ssl_ca="/etc/ca.pem")
    return s


def test_the_connector_follows_mysql_ssl_mode_and_never_drops_tls_silently():
    cfg = config({"ecs_order_info": "debezium"})
    assert connector_config(cfg, tls("disabled"))["database.ssl.mode"] == "disabled"
    required = connector_config(cfg, tls("required"))
    assert required["database.ssl.mode"] == "required" and "database.ssl.truststore" not in required
    for mode in ("verify_ca", "verify_identity"):
        with pytest.raises(ConfigError, match="CONNECT_MYSQL_SSL_TRUSTSTORE"):
            connector_config(cfg, tls(mode, mysql_ssl_truststore=None))
        out = connector_config(cfg, tls(mode, mysql_ssl_truststore="/var/lib/connect/ca.p12",
                                        mysql_ssl_truststore_password_ref="${env:TS_PW}"))
        assert (out["database.ssl.mode"], out["driver.serverSslCert"], out["database.ssl.truststore"],
                out["database.ssl.truststore.password"]) == (mode, "/etc/ca.pem", "/var/lib/connect/ca.p12",
                                                             "${env:TS_PW}")
    # CONNECT_MYSQL_SSL_MODE / _CA speak for the worker's host when they differ from the poller's.
    out = connector_config(cfg, tls("required", mysql_ssl_mode="verify_ca", mysql_ssl_ca="/opt/ca.pem",
                                     mysql_ssl_truststore="/opt/ca.p12",
                                     mysql_ssl_truststore_password_ref="${file:/opt/s.properties:ts}"))
    assert (out["database.ssl.mode"], out["driver.serverSslCert"]) == ("verify_ca", "/opt/ca.pem")
    with pytest.raises(ConfigError, match="CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD_REF") as err:
        connector_config(cfg, tls("verify_ca", mysql_ssl_truststore="/opt/ca.p12",
                                  mysql_ssl_truststore_password_ref="changeit-literal"))
    assert "changeit-literal" not in str(err.value)


def test_the_connect_workers_grants_are_derived_from_the_config():
    from ordertrack.kafka.acls import connect_grants

    cfg = config({"ecs_order_info": "debezium", "uni_tracking_info": "debezium"})
    got = {(g.resource, g.pattern, g.name, g.operation) for g in connect_grants(cfg, "grp", "grp.store")}
    assert ("group", "literal", "grp", "Read") in got
    assert {("transactional-id", "literal", "connect-cluster-grp", op) for op in ("Write", "Describe")} <= got
    assert {("transactional-id", "literal", f"grp-{cfg.cdc.connector}-0", op) for op in ("Write", "Describe")} <= got
    for topic in ("kuaisong.cdc.ecs_order_info", "kuaisong.cdc.uni_tracking_info", "__debezium-heartbeat.kuaisong.cdc"):
        assert {("topic", "literal", topic, op) for op in ("Write", "Describe", "Create")} <= got
    assert not any("uni_tracking_spath" in name or "watermarks" in name for _, _, name, _ in got)  # poller's
    assert {("topic", "literal", f"grp.store.{k}", "DescribeConfigs") for k in ("configs", "offsets", "status")} <= got
    assert not any(op == "Read" and r == "topic" and "cdc" in name for r, _, name, op in got)
    assert all(p == "literal" for _, p, _, _ in got)  # nothing by prefix
