"""Connections and secrets, from the environment or `.env` files (never from the pipeline YAML).

Variable names are the ones a production deployment sets (`MYSQL_HOST`, `KAFKA_BOOTSTRAP_SERVERS`,
`WAREHOUSE_URL`, ...). Files read, later ones winning: `.stack/.env` (written by `ordertrack stack
up`), then `.env` in the working directory; real environment variables win over both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ordertrack.errors import ConfigError

MySQLSslMode = Literal["disabled", "required", "verify_ca", "verify_identity"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


def state_dir() -> Path:
    """The ignored folder holding the local stack: `$ORDERTRACK_STATE_DIR` or `./.stack`."""
    return Path(os.environ.get("ORDERTRACK_STATE_DIR", ".stack")).absolute()


class MySQLSettings(BaseSettings):
    """The source database the producer polls."""

    model_config = SettingsConfigDict(env_prefix="MYSQL_", extra="ignore")

    host: str = Field("127.0.0.1", description="Source host.")
    port: int = Field(3306, description="Source port.")
    user: str = Field("ordertrack", description="Read-only pipeline user.")
    password: SecretStr = Field(SecretStr(""), description="Its password.")
    database: str = Field("kuaisong", description="Source schema.")
    unix_socket: str | None = Field(None, description="Socket path, instead of host and port.")
    init_command: str | None = Field(None, description="SQL run when a session opens (e.g. a time zone).")
    ssl_mode: MySQLSslMode = Field(
        "required", description="TLS to the source over TCP: disabled, required (encrypted, certificate not "
        "checked), verify_ca (signed by MYSQL_SSL_CA) or verify_identity (and naming MYSQL_HOST). Never "
        "downgraded: a server without TLS is refused unless disabled. Not used over a unix socket.")
    ssl_ca: str | None = Field(None, description="CA file (PEM) the server's certificate must chain to.")
    ssl_cert: str | None = Field(None, description="Client certificate (PEM), when the server asks for one.")
    ssl_key: str | None = Field(None, description="Its private key (PEM).")
    driver: Literal["auto", "pymysql", "mysqlclient"] = Field(
        "auto", description="The producer's reads: mysqlclient (the C client, several times faster; `pip install "
        "'ordertrack[mysqlclient]'`) or pymysql. auto takes mysqlclient when it is installed and the connection "
        "uses no TLS (MYSQL_SSL_MODE=disabled or a unix socket), pymysql otherwise. Every other connection uses pymysql.")

    @property
    def tls(self) -> bool:
        """Whether connections ask for TLS: over TCP unless disabled (a unix socket is local)."""
        return not self.unix_socket and self.ssl_mode != "disabled"

    @model_validator(mode="after")
    def _tls_consistent(self) -> "MySQLSettings":
        if self.ssl_mode in ("verify_ca", "verify_identity") and not self.ssl_ca:
            raise ValueError(f"MYSQL_SSL_MODE={self.ssl_mode} needs MYSQL_SSL_CA, the CA file to verify the "
                             "server's certificate with")
        if self.driver == "mysqlclient" and self.tls:
            raise ValueError(f"MYSQL_DRIVER=mysqlclient reads without TLS only (MYSQL_SSL_MODE=disabled or a unix "
                             f"socket), and MYSQL_SSL_MODE is {self.ssl_mode}: use MYSQL_DRIVER=auto or pymysql")
        if bool(self.ssl_cert) != bool(self.ssl_key):
            raise ValueError("MYSQL_SSL_CERT and MYSQL_SSL_KEY go together: set both or neither")
        if self.ssl_mode == "required" and self.ssl_ca:
            raise ValueError("MYSQL_SSL_CA is set but MYSQL_SSL_MODE=required does not check the server's "
                             "certificate: use verify_identity (or verify_ca)")
        if self.ssl_mode == "disabled" and (self.ssl_ca or self.ssl_cert):
            raise ValueError("MYSQL_SSL_CA or MYSQL_SSL_CERT is set but MYSQL_SSL_MODE=disabled: say which you "
                             "mean (TLS would not be used)")
        return self


class WorkloadSettings(BaseSettings):
    """The account `ordertrack generate` writes synthetic rows with (local stack only)."""

    model_config = SettingsConfigDict(env_prefix="WORKLOAD_MYSQL_", extra="ignore")

    user: str = Field("kuaisong_app", description="Writer user of the synthetic workload.")
    password: SecretStr = Field(SecretStr(""), description="Its password.")


class KafkaSettings(BaseSettings):
    """One set of connection and security settings for every Kafka client of the pipeline
    (confluent-kafka's producer, admin and consumers, faust's aiokafka worker): what reaches each
    is built in `ordertrack.kafka.security`."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL: what the broker's listener speaks.")
    sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, or OAUTHBEARER (with KAFKA_SASL_OAUTHBEARER_PROVIDER).")
    sasl_username: str | None = Field(None, description="SASL user (PLAIN, SCRAM).")
    sasl_password: SecretStr | None = Field(None, description="Its password.")
    sasl_oauthbearer_provider: Literal["aws_msk_iam"] | None = Field(
        None, description="Where OAUTHBEARER tokens come from: aws_msk_iam (Amazon MSK IAM, signed with the AWS "
        "credentials boto3 finds, for KAFKA_SASL_OAUTHBEARER_REGION).")
    sasl_oauthbearer_region: str | None = Field(
        None, description="MSK's region (default: AWS_REGION or AWS_DEFAULT_REGION in the environment, or "
        "boto3's config file).")
    ssl_ca_location: str | None = Field(None, description="CA file (PEM) the broker's certificate must chain to "
                                                          "(default: the system's CAs).")
    ssl_certificate_location: str | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    ssl_key_location: str | None = Field(None, description="Its private key (PEM).")
    ssl_key_password: SecretStr | None = Field(None, description="The key's password, if it has one.")
    ssl_endpoint_identification: bool = Field(
        True, description="Check that the broker's certificate names the host connected to; turn off only for "
        "brokers reached by an address their certificate does not name.")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _security_consistent(self) -> "KafkaSettings":
        p, m = self.security_protocol, self.sasl_mechanism
        if self.sasl:
            if m is None:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={p} needs KAFKA_SASL_MECHANISM")
            if m == "OAUTHBEARER":
                if self.sasl_oauthbearer_provider is None:
                    raise ValueError("KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTHBEARER_PROVIDER "
                                     "(aws_msk_iam)")
            elif not self.sasl_username or self.sasl_password is None:
                raise ValueError(f"KAFKA_SASL_MECHANISM={m} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
            if p == "SASL_PLAINTEXT" and m in ("PLAIN", "OAUTHBEARER"):
                raise ValueError(f"KAFKA_SASL_MECHANISM={m} over SASL_PLAINTEXT would send the credentials in clear: "
                                 "use KAFKA_SECURITY_PROTOCOL=SASL_SSL")
        elif m is not None:
            raise ValueError(f"KAFKA_SASL_MECHANISM is set but KAFKA_SECURITY_PROTOCOL={p} does not use SASL: "
                             "use SASL_SSL (or SASL_PLAINTEXT)")
        if not self.tls and (self.ssl_ca_location or self.ssl_certificate_location):
            raise ValueError(f"a KAFKA_SSL_ file is set but KAFKA_SECURITY_PROTOCOL={p} does not use TLS: "
                             "use SSL or SASL_SSL")
        if bool(self.ssl_certificate_location) != bool(self.ssl_key_location):
            raise ValueError("KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION go together: set both or neither")
        return self


class S3Settings(BaseSettings):
    """S3 for the old system's watermark files and Redshift staging; empty values use boto3's defaults."""

    model_config = SettingsConfigDict(env_prefix="AWS_", extra="ignore")

    endpoint_url_s3: str | None = Field(None, description="S3 endpoint (moto's server on the local stack).")
    default_region: str = Field("us-east-1", description="Region.")
    access_key_id: str | None = Field(None, description="Access key id.")
    secret_access_key: SecretStr | None = Field(None, description="Secret access key.")


class ConnectSettings(BaseSettings):
    """Kafka Connect's REST API and what the Debezium connector is told about the source."""

    model_config = SettingsConfigDict(env_prefix="CONNECT_", extra="ignore")

    url: str = Field("http://127.0.0.1:8083", description="Kafka Connect REST API.")
    schema_history_dir: str | None = Field(
        None, description="Folder on the Connect worker's host for Debezium's schema history files.")
    mysql_host: str | None = Field(None, description="The source's host as the Connect worker sees it (default MYSQL_HOST).")
    mysql_port: int | None = Field(None, description="Its port (default MYSQL_PORT).")
    mysql_user: str = Field("ordertrack_cdc", description="The binlog CDC account.")
    mysql_password_ref: str = Field(
        "${env:CDC_MYSQL_PASSWORD}",
        description="How the connector config names the CDC account's password: a Connect config provider "
        "reference the worker resolves (the password itself never goes to Connect's config topic).")
    mysql_password: SecretStr | None = Field(
        None, validation_alias="CDC_MYSQL_PASSWORD",
        description="The CDC account's password where `connectors apply` runs too (optional): then it checks "
        "the account's login, grants and the binlog settings itself before Connect does.")
    mysql_ssl_mode: MySQLSslMode | None = Field(
        None, description="TLS of the connector to the source (default MYSQL_SSL_MODE): the connector's "
        "database.ssl.mode; never silently disabled.")
    mysql_ssl_ca: str | None = Field(
        None, description="The source's CA (PEM) on the Connect worker's host, for the connector's JDBC session "
        "(default MYSQL_SSL_CA).")
    mysql_ssl_truststore: str | None = Field(
        None, description="A PKCS#12 trust store holding that CA on the Connect worker's host, for the binlog "
        "connection (Debezium's binlog reader reads no PEM); needed by verify_ca and verify_identity.")
    mysql_ssl_truststore_password_ref: str = Field(
        "${env:CONNECT_MYSQL_SSL_TRUSTSTORE_PASSWORD}",
        description="The trust store's password as a Connect config provider reference the worker resolves.")


class WarehouseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WAREHOUSE_", extra="ignore")

    url: str = Field(
        "duckdb:///.stack/warehouse.duckdb",
        description="duckdb:///relative/path, duckdb:////absolute/path, postgresql://user:password@host:port/db "
                    "or redshift://host:port/db.",
    )
    user: str | None = Field(None, description="Redshift (or PostgreSQL, when the URL has none) user.")
    password: SecretStr | None = Field(None, description="Redshift (or PostgreSQL, when the URL has none) password.")
    s3_staging: str | None = Field(None, description="Redshift: s3://bucket/prefix/ where batches are staged.")
    iam_role: str | None = Field(None, description="Redshift: the IAM role COPY assumes to read the staging bucket.")
    ssl_mode: Literal["disable", "require", "verify-ca", "verify-full"] = Field(
        "require", description="PostgreSQL: TLS to the warehouse (libpq's sslmode; never `prefer`, which falls "
        "back to plaintext). An `sslmode` in the URL wins. Redshift always uses verify-full.")
    ssl_root_cert: str | None = Field(None, description="PostgreSQL: CA file (PEM) for verify-ca / verify-full.")


Fallback = Literal["mysql", "kafka", "warehouse"]

# Per service: the fields saying where it is. When none of them was set (environment or a `.env`
# file), the service's address is the built-in default, which a command must not use silently.
_ADDRESS_FIELDS: dict[Fallback, tuple[str, ...]] = {
    "mysql": ("host", "port", "unix_socket"),
    "kafka": ("bootstrap_servers",),
    "warehouse": ("url",),
}


class Settings(BaseModel):
    """Everything the pipeline connects to; one object, loaded once per process."""

    mysql: MySQLSettings
    workload: WorkloadSettings
    kafka: KafkaSettings
    warehouse: WarehouseSettings
    s3: S3Settings
    connect: ConnectSettings = ConnectSettings.model_construct()
    env_files: tuple[str, ...] = ()
    """The `.env` files that were read (absolute paths)."""
    defaulted: frozenset[Fallback] = frozenset()
    """The services whose address is the built-in default: nothing set it."""

    def fallback_notice(self) -> str | None:
        """One sentence saying which built-in defaults are in use and why, or None when every
        service's address was configured."""
        if not self.defaulted:
            return None
        used = {
            "mysql": ("MySQL", self.mysql.unix_socket or f"{self.mysql.host}:{self.mysql.port}", "MYSQL_HOST"),
            "kafka": ("Kafka", self.kafka.bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS"),
            "warehouse": ("the warehouse", self.warehouse.url, "WAREHOUSE_URL"),
        }
        parts = [used[g] for g in ("mysql", "kafka", "warehouse") if g in self.defaulted]
        what = _join([f"{name} ({value})" for name, value, _ in parts])
        variables = _join([var for _, _, var in parts], "or")
        where = (f"or in {_join(list(self.env_files), 'or')}" if self.env_files
                 else f"and there is no {state_dir() / '.env'} or {Path('.env').absolute()}")
        return f"using built-in defaults for {what}, since no {variables} is set in the environment {where}."


def _join(items: list[str], word: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def env_files() -> tuple[Path, ...]:
    return (state_dir() / ".env", Path(".env").absolute())


S = TypeVar("S", bound=BaseSettings)


def _load(cls: type[S], files: tuple[str, ...]) -> S:
    try:
        return cls(_env_file=files)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across fields: its message names the variables
            raise ConfigError(f"{first['msg'].removeprefix('Value error, ')}.") from None
        var = f"{cls.model_config.get('env_prefix', '')}{first['loc'][0]}".upper()
        # The offending value may be a secret: only the variable's name and the problem are told.
        raise ConfigError(f"Environment variable {var} is invalid: {first['msg']}.") from None


def load_settings() -> Settings:
    """Build the settings from the `.env` files and the environment."""
    files = tuple(str(p) for p in env_files() if p.exists())
    mysql = _load(MySQLSettings, files)
    workload = _load(WorkloadSettings, files)
    kafka = _load(KafkaSettings, files)
    warehouse = _load(WarehouseSettings, files)
    s3 = _load(S3Settings, files)
    connect = _load(ConnectSettings, files)
    groups: dict[Fallback, BaseSettings] = {"mysql": mysql, "kafka": kafka, "warehouse": warehouse}
    defaulted = frozenset(g for g, fields in _ADDRESS_FIELDS.items()
                          if not set(fields) & groups[g].model_fields_set)
    return Settings.model_construct(mysql=mysql, workload=workload, kafka=kafka, warehouse=warehouse, s3=s3,
                                    connect=connect, env_files=files, defaulted=defaulted)
