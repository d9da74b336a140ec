"""Connections and secrets, from the environment or `.env` files (never from the pipeline YAML).

Variable names are the ones a production deployment sets (`MYSQL_HOST`, `KAFKA_BOOTSTRAP_SERVERS`,
`WAREHOUSE_URL`, ...). Files read, later ones winning: `.stack/.env` (written by `ordertrack stack
up`), then `.env` in the working directory; real environment variables win over both.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ordertrack.errors import ConfigError


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


class WorkloadSettings(BaseSettings):
    """The account `ordertrack generate` writes synthetic rows with (local stack only)."""

    model_config = SettingsConfigDict(env_prefix="WORKLOAD_MYSQL_", extra="ignore")

    user: str = Field("kuaisong_app", description="Writer user of the synthetic workload.")
    password: SecretStr = Field(SecretStr(""), description="Its password.")


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")


class S3Settings(BaseSettings):
    """S3 for the old system's watermark files and Redshift staging; empty values use boto3's defaults."""

    model_config = SettingsConfigDict(env_prefix="AWS_", extra="ignore")

    endpoint_url_s3: str | None = Field(None, description="S3 endpoint (moto's server on the local stack).")
    default_region: str = Field("us-east-1", description="Region.")
    access_key_id: str | None = Field(None, description="Access key id.")
    secret_access_key: SecretStr | None = Field(None, description="Secret access key.")


class WarehouseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WAREHOUSE_", extra="ignore")

    url: str = Field(
        "duckdb:///.stack/warehouse.duckdb",
        description="duckdb:///relative/path, duckdb:////absolute/path, or redshift://host:port/db.",
    )
    user: str | None = Field(None, description="Redshift user.")
    password: SecretStr | None = Field(None, description="Redshift password.")
    s3_staging: str | None = Field(None, description="Redshift: s3://bucket/prefix/ where batches are staged.")
    iam_role: str | None = Field(None, description="Redshift: the IAM role COPY assumes to read the staging bucket.")


class Settings(BaseModel):
    """Everything the pipeline connects to; one object, loaded once per process."""

    mysql: MySQLSettings
    workload: WorkloadSettings
    kafka: KafkaSettings
    warehouse: WarehouseSettings
    s3: S3Settings


def env_files() -> tuple[Path, ...]:
    return (state_dir() / ".env", Path(".env").absolute())


def _load(cls: type[BaseSettings], files: tuple[str, ...]) -> BaseSettings:
    try:
        return cls(_env_file=files)  # type: ignore[call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        var = f"{cls.model_config.get('env_prefix', '')}{first['loc'][0]}".upper()
        # The offending value may be a secret: only the variable's name and the problem are told.
        raise ConfigError(f"Environment variable {var} is invalid: {first['msg']}.") from None


def load_settings() -> Settings:
    """Build the settings from the `.env` files and the environment."""
    files = tuple(str(p) for p in env_files() if p.exists())
    return Settings.model_construct(
        mysql=_load(MySQLSettings, files),
        workload=_load(WorkloadSettings, files),
        kafka=_load(KafkaSettings, files),
        warehouse=_load(WarehouseSettings, files),
        s3=_load(S3Settings, files),
    )
