from __future__ import annotations

import pytest

from ordertrack.errors import ConfigError
from ordertrack.settings import load_settings


def test_settings_from_env_file_and_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORDERTRACK_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / ".env").write_text("MYSQL_PORT=3310\nMYSQL_PASSWORD=from-stack\n")
    (tmp_path / ".env").write_text("MYSQL_PASSWORD=from-dotenv\n")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9999")
    for var in ("MYSQL_PORT", "MYSQL_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.mysql.port == 3310
    assert s.mysql.password.get_secret_value() == "from-dotenv"  # ./.env overrides .stack/.env
    assert s.kafka.bootstrap_servers == "broker:9999"
    assert "from-dotenv" not in repr(s)  # SecretStr never renders the secret


def test_bad_variable_is_named_without_its_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORDERTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MYSQL_PORT", "s3cr3t-not-a-port")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert "MYSQL_PORT" in str(e.value)
    assert "s3cr3t" not in str(e.value)
