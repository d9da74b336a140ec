"""TLS to a PostgreSQL warehouse: required unless the URL says otherwise, never a plaintext fallback."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from ordertrack.config import load_pipeline_config
from ordertrack.errors import ConfigError, SecurityError
from ordertrack.resources import resource_path
from ordertrack.warehouse.postgres_engine import PostgresEngine
from tests.support.warehouses import settings_for

pytestmark = pytest.mark.integration


def test_a_server_without_tls_is_refused_by_default(postgres_url: str) -> None:
    # The local PostgreSQL has no TLS: its URL says `sslmode=disable`. Without that, the engine
    # asks for TLS (`require`) and must stop, not carry on in plaintext as libpq's `prefer` would.
    parts = urlsplit(postgres_url)
    assert "sslmode=disable" in parts.query
    bare = urlunsplit(parts._replace(query=""))
    settings = settings_for(bare)
    assert settings.warehouse.ssl_mode == "require"
    cfg = load_pipeline_config(resource_path("pipeline.yaml"))
    with pytest.raises(SecurityError) as e:  # a setting to fix: never waited out as an outage
        PostgresEngine(settings, cfg.target.raw_schema, cfg.target.mart_schema)
    text = str(e.value)
    assert "WAREHOUSE_SSL_MODE" in text and "SSL" in text
    password = parts.password or ""
    assert password and password not in text


def test_a_url_asking_for_a_plaintext_fallback_is_refused(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    cfg = load_pipeline_config(resource_path("pipeline.yaml"))
    for mode in ("prefer", "allow"):
        url = urlunsplit(parts._replace(query=f"sslmode={mode}"))
        with pytest.raises(ConfigError) as e:
            PostgresEngine(settings_for(url), cfg.target.raw_schema, cfg.target.mart_schema)
        assert f"sslmode={mode}" in str(e.value) and "plaintext" in str(e.value)
