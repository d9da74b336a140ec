"""What a failed TLS handshake means, told the same way for every service.

OpenSSL's words for a failure ("certificate verify failed: unable to get local issuer
certificate", "wrong version number", "tlsv13 alert certificate required") reach us through
librdkafka, Python's ssl module and libpq; each service's error names the setting to fix from
the kind found here. Nothing here ever falls back to plaintext: a failed handshake is the end of
the command (`SecurityError`, exit 4).
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import Literal

TlsFailure = Literal["expired", "wrong_host", "untrusted", "not_tls", "client_cert", "other"]

_KINDS: tuple[tuple[TlsFailure, re.Pattern[str]], ...] = (
    ("expired", re.compile(r"certificate has expired|certificate is not yet valid", re.I)),
    ("wrong_host", re.compile(r"hostname mismatch|ip address mismatch|doesn't match|does not match|"
                              r"certificate name validation failed|no alternative certificate subject name", re.I)),
    ("client_cert", re.compile(r"certificate required|peer did not return a certificate|"
                               r"sslv3 alert handshake failure|alert bad certificate|unknown ca.*alert|alert unknown ca",
                               re.I)),
    ("untrusted", re.compile(r"unable to get local issuer|self[- ]signed certificate|certificate verify failed|"
                             r"unable to verify the first certificate|broker certificate could not be verified", re.I)),
    ("not_tls", re.compile(r"plaintext broker listener|wrong version number|packet length too long|unknown protocol|"
                           r"http request|"
                           r"record layer failure|does not support ssl|"
                           r"ssl is required but the server|server does not support", re.I)),
)


def tls_failure(text: str) -> TlsFailure | None:
    """The kind of TLS failure `text` reports, or None when it does not read as one."""
    for kind, pattern in _KINDS:
        if pattern.search(text):
            return kind
    if re.search(r"\bssl\b|\btls\b|handshake", text, re.I):
        return "other"
    return None


def client_context(ca: str | None, *, verify: bool, check_hostname: bool,
                   cert: str | None = None, key: str | None = None, key_password: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the given CA (else the system's), verification as asked, a client
    certificate when given. TLS 1.2 at least."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
    if cert:
        ctx.load_cert_chain(cert, key, key_password)
    return ctx


def diagnose_certificate(host: str, port: int, ca: str | None, *, check_hostname: bool,
                         timeout: float = 5.0) -> TlsFailure | None:
    """Why a server's certificate fails verification, as Python's TLS sees it with the same CA
    and host check (clients such as librdkafka report only "certificate verify failed"). None
    when it verifies, or the server cannot be reached or does not start TLS at once."""
    ctx = client_context(ca, verify=True, check_hostname=check_hostname)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as exc:
        return tls_failure(exc.verify_message or str(exc)) or "other"
    except (OSError, ValueError):
        return None
