"""Where the local stack lives on disk and which ports it takes.

Everything sits under one ignored state folder (`.stack/` by default). Fetched jars go to the
user's cache folder (`~/.cache/ordertrack`, or `ORDERTRACK_CACHE_DIR`), shared by every state
folder and every clone, so a second stack or a fresh clone does not fetch Kafka again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ordertrack.settings import state_dir


def _port(var: str, default: int) -> int:
    raw = os.environ.get(var)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        from ordertrack.errors import ConfigError

        raise ConfigError(f"Environment variable {var} must be a port number, not {raw!r}.") from None


@dataclass(frozen=True)
class StackLayout:
    root: Path
    cache: Path
    kafka_port: int
    kafka_controller_port: int
    kafka_secure_port: int  # SASL_SSL listener (SCRAM), only in a secured stack
    kafka_mtls_port: int  # SSL listener with client certificates required, only in a secured stack
    mariadb_port: int
    postgres_port: int
    moto_port: int
    connect_port: int

    @classmethod
    def from_env(cls) -> "StackLayout":
        root = state_dir()
        # The user's cache folder, not the checkout: a fresh clone (CI's, a second worktree)
        # reuses the Kafka jars instead of resolving them again.
        user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ordertrack"
        cache = Path(os.environ.get("ORDERTRACK_CACHE_DIR", user_cache)).absolute()
        return cls(
            root=root,
            cache=cache,
            kafka_port=_port("ORDERTRACK_KAFKA_PORT", 9092),
            kafka_controller_port=_port("ORDERTRACK_KAFKA_CONTROLLER_PORT", 9093),
            kafka_secure_port=_port("ORDERTRACK_KAFKA_SECURE_PORT", 9094),
            kafka_mtls_port=_port("ORDERTRACK_KAFKA_MTLS_PORT", 9095),
            mariadb_port=_port("ORDERTRACK_MARIADB_PORT", 3307),
            postgres_port=_port("ORDERTRACK_POSTGRES_PORT", 5433),
            moto_port=_port("ORDERTRACK_MOTO_PORT", 5055),
            connect_port=_port("ORDERTRACK_CONNECT_PORT", 8083),
        )

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def secure(self) -> bool:
        """Whether the stack runs secured (`stack up --secure`): asked for once, the certificate
        folder exists and the stack stays secured on later `up`s (remove the folder to go back)."""
        return self.tls_dir.is_dir()

    @property
    def kafka_dir(self) -> Path:
        return self.root / "kafka"

    @property
    def mariadb_dir(self) -> Path:
        return self.root / "mariadb"

    @property
    def mariadb_socket(self) -> Path:
        return self.mariadb_dir / "run" / "mysqld.sock"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def moto_dir(self) -> Path:
        return self.root / "moto"

    @property
    def connect_dir(self) -> Path:
        return self.root / "connect"

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"
