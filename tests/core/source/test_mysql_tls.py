"""MYSQL_SSL_MODE as pymysql receives it: never a silent plaintext fallback (pure logic)."""

from __future__ import annotations

import ssl

import pytest

from ordertrack.errors import ConfigError
from ordertrack.settings import MySQLSettings, _load
from ordertrack.source.connection import _tls, _tls_sentence


def test_required_is_the_default_and_encrypts_without_checking_the_certificate() -> None:
    args = _tls(MySQLSettings(host="db"))
    ctx = args["ssl"]
    # A context (not a dict) is what makes pymysql refuse a server without TLS.
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_verify_identity_checks_the_chain_and_the_host(tmp_path) -> None:
    from ordertrack.stack.tls import make_ca

    ca = make_ca(tmp_path, "ca")
    ctx = _tls(MySQLSettings(host="db", ssl_mode="verify_identity", ssl_ca=str(ca.cert_path)))["ssl"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    ctx = _tls(MySQLSettings(host="db", ssl_mode="verify_ca", ssl_ca=str(ca.cert_path)))["ssl"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname


def test_disabled_and_unix_sockets_use_no_tls() -> None:
    assert _tls(MySQLSettings(ssl_mode="disabled")) == {"ssl_disabled": True}
    assert _tls(MySQLSettings(unix_socket="/run/mysqld.sock")) == {"ssl_disabled": True}


@pytest.mark.parametrize(("env", "needle"), [
    ({"MYSQL_SSL_MODE": "verify_ca"}, "needs MYSQL_SSL_CA"),
    ({"MYSQL_SSL_CERT": "/c.pem"}, "go together"),
    ({"MYSQL_SSL_MODE": "disabled", "MYSQL_SSL_CA": "/ca.pem"}, "TLS would not be used"),
    ({"MYSQL_SSL_MODE": "preferred"}, "MYSQL_SSL_MODE"),
])
def test_inconsistent_tls_settings_are_one_sentence(monkeypatch, env: dict, needle: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as e:
        _load(MySQLSettings, ())
    assert needle in str(e.value)


def test_every_failure_kind_names_a_setting() -> None:
    cfg = MySQLSettings(host="db", ssl_mode="verify_identity", ssl_ca="/ca.pem")
    for kind in ("not_tls", "expired", "wrong_host", "untrusted", "client_cert", "other"):
        assert "MYSQL_" in _tls_sentence(kind, cfg, "db:3306")  # type: ignore[arg-type]


def _failed_connect(cause: BaseException, host: str = "db") -> Exception:
    import pymysql

    exc = pymysql.err.OperationalError(2003, f"Can't connect to MySQL server on {host!r} ({cause})")
    exc.original_exception = cause  # type: ignore[attr-defined] - what pymysql attaches
    return exc


def test_only_the_tls_layers_own_error_is_judged_never_the_host_name() -> None:
    from ordertrack.source.connection import _tls_kind

    cfg = MySQLSettings(host="mysql-ssl.internal")
    refused = _failed_connect(ConnectionRefusedError(111, "Connection refused"), "mysql-ssl.internal")
    assert _tls_kind(refused, cfg) is None  # an outage, waited out: the host merely says "ssl"
    cut = _failed_connect(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    assert _tls_kind(cut, cfg) is None  # a handshake cut short: a server restarting, a proxy
    bad = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    bad.verify_message = "certificate has expired"
    assert _tls_kind(_failed_connect(bad), cfg) == "expired"
    assert _tls_kind(_failed_connect(bad), MySQLSettings(ssl_mode="disabled")) is None


def test_a_ca_with_a_mode_that_does_not_check_it_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("MYSQL_SSL_MODE", "required")
    monkeypatch.setenv("MYSQL_SSL_CA", "/ca.pem")
    with pytest.raises(ConfigError) as e:
        _load(MySQLSettings, ())
    assert "verify_identity" in str(e.value)
