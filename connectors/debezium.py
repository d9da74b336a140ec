"""The Debezium connector configuration, generated from the pipeline YAML and the environment.

One connector per source database carries every `cdc_strategy: debezium` table. What each
setting is for is said next to it; `ordertrack connectors render` prints the result and
`connectors/examples/` keeps one rendered for the shipped config with every table on Debezium.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ordertrack.config import PipelineConfig
from ordertrack.errors import ConfigError
from ordertrack.settings import Settings
from ordertrack.stack.connect import MYSQL_CONNECTOR_CLASS  # the connector class the stack's plugin holds
from ordertrack.tables import TableRegistry, cdc_topic_prefix

__all__ = ["MYSQL_CONNECTOR_CLASS", "connector_config"]


def connector_config(config: PipelineConfig, settings: Settings) -> dict[str, str]:
    """Every setting of the connector, as Kafka Connect's REST API takes them (all strings)."""
    specs = TableRegistry(config).binlog()
    if not specs:
        raise ConfigError("No table has `cdc_strategy: debezium` in the pipeline YAML: there is no connector to apply.")
    connect, mysql = settings.connect, settings.mysql
    if not _REF.fullmatch(connect.mysql_password_ref):
        # A literal would be stored in Connect's config topic and shown by its REST API.
        raise ConfigError("CONNECT_MYSQL_PASSWORD_REF must be a Kafka Connect config provider reference such as "
                          "${env:CDC_MYSQL_PASSWORD} or ${file:/path:key}, never the password itself.")
    prefix = cdc_topic_prefix(config)
    database = config.source.database
    history_dir = connect.schema_history_dir
    if not history_dir:
        raise ConfigError("CONNECT_SCHEMA_HISTORY_DIR is not set: Debezium needs a folder on the Connect worker's "
                          "host for its schema history (the local stack sets it).")
    out: dict[str, str] = {
        "connector.class": MYSQL_CONNECTOR_CLASS,
        "tasks.max": "1",  # a binlog is one ordered stream: one task reads it
        "database.hostname": connect.mysql_host or mysql.host,
        "database.port": str(connect.mysql_port or mysql.port),
        "database.user": connect.mysql_user,
        # A config-provider reference the worker resolves: the secret never enters Connect's config topic.
        "database.password": connect.mysql_password_ref,
        "database.server.id": str(config.cdc.server_id),
        "topic.prefix": prefix,
        "database.include.list": database,
        "table.include.list": ",".join(re.escape(f"{database}.{s.name}") for s in specs),
        "snapshot.mode": config.cdc.snapshot_mode,
        # Values as the poller publishes them: decimals as exact strings, not base64 bytes.
        "decimal.handling.mode": "string",
        "bigint.unsigned.handling.mode": "long",
        # Our table topics use retention, not compaction: a tombstone after each delete would be a
        # message with no row. The delete event itself carries the row's last image.
        "tombstones.on.delete": "false",
        "include.schema.changes": "false",
        # Without heartbeats the committed position moves only with events of our tables, so a
        # busy binlog of other databases would look like lag (`connectors status`).
        "heartbeat.interval.ms": "10000",
        # Kafka 4 clients lack the poll(long) the Kafka-backed history and signal channel call.
        "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
        "schema.history.internal.file.filename": str(PurePosixPath(history_dir) / f"{config.cdc.connector}.dat"),
        "signal.enabled.channels": "source",
        # `<prefix>.<database>.<table>` becomes `<prefix>.<table>`, the topic the registry names.
        "transforms": "route",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": f"{re.escape(prefix)}\\.{re.escape(database)}\\.(.*)",
        "transforms.route.replacement": f"{prefix}.$1",
        # `ordertrack topics create` makes the table topics; these only cover a topic it did not.
        "topic.creation.default.replication.factor": "-1",  # the broker's default
        "topic.creation.default.partitions": str(config.kafka.partitions),
        # Debezium 2.6 does not declare exactly-once support to Connect's preflight check; with the
        # worker's exactly.once.source.support on, its events and offsets still commit in one
        # transaction (measured: SIGKILL of the worker, 0 duplicates; docs/RUNTIME.md).
        "exactly.once.support": "requested",
    }
    if config.cdc.adapter == "mariadb":
        out.update({
            "connector.adapter": "mariadb",
            "database.protocol": "jdbc:mariadb",
            "database.jdbc.driver": "org.mariadb.jdbc.Driver",
        })
    out.update(_source_tls(config, settings))
    return out


_REF = re.compile(r"\$\{[A-Za-z0-9_.-]+:[^}]*\}")


def _source_tls(config: PipelineConfig, settings: Settings) -> dict[str, str]:
    """The connector's TLS to the source, from CONNECT_MYSQL_SSL_MODE (default MYSQL_SSL_MODE).

    Debezium opens two connections and each takes its trust differently (measured on 2.6.2 with
    MariaDB 10.11, docs/RUNTIME.md): the JDBC session passes `database.ssl.mode` to the driver
    (the MariaDB driver reads `required` as its `trust`, `verify_ca`, `verify_identity`; it rejects
    Debezium's default `preferred`, which is never set here) and takes the CA as the driver's
    `serverSslCert` (a PEM path); the binlog connection takes trust only from
    `database.ssl.truststore`, a PKCS#12 key store. Both must be on the Connect worker's host.
    A mode that cannot be expressed is refused, never turned into `disabled`. The connector logs
    in with the CDC account's password; it presents no client certificate (MYSQL_SSL_CERT is the
    poller's)."""
    connect, mysql = settings.connect, settings.mysql
    mode = connect.mysql_ssl_mode or mysql.ssl_mode
    out: dict[str, str] = {"database.ssl.mode": mode}
    if mode in ("disabled", "required"):  # `required`: encrypted, the certificate not checked (the driver's `trust`)
        return out
    ca = connect.mysql_ssl_ca or mysql.ssl_ca
    if not (ca and connect.mysql_ssl_truststore):
        raise ConfigError(f"MYSQL_SSL_MODE={mode} for the connector needs the source's CA on the Connect worker's "
                          "host twice: CONNECT_MYSQL_SSL_CA (PEM, default MYSQL_SSL_CA) for its JDBC session and "
                          "CONNECT_MYSQL_SSL_TRUSTSTORE (PKCS#12) for its binlog connection.")
    if not _REF.fullmatch(connect.mysql_ssl_truststore_password_ref):
        raise ConfigError("CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD_REF must be a Kafka Connect config provider "
                          "reference such as ${env:CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD}, never the password itself.")
    out.update({
        "database.ssl.truststore": connect.mysql_ssl_truststore,
        "database.ssl.truststore.password": connect.mysql_ssl_truststore_password_ref,
    })
    if config.cdc.adapter == "mariadb":
        out["driver.serverSslCert"] = ca
    else:  # MySQL Connector/J reads the same store for JDBC (Debezium passes it as trustCertificateKeyStoreUrl)
        out["driver.trustCertificateKeyStoreType"] = "PKCS12"
    return out
