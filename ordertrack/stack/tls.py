"""A throwaway certificate authority and the certificates of the secured local stack.

`stack up --secure` makes, once, under `<state>/tls/` (kept across `up`s; its existence is what
keeps the stack secured on later plain `up`s):

* `ca.pem` / `ca.key`: the local CA every client trusts (`KAFKA_SSL_CA_LOCATION`, `MYSQL_SSL_CA`);
* `server.pem` / `server.key`: Kafka's and MariaDB's certificate (SAN IP 127.0.0.1, DNS localhost);
* `client.pem` / `client.key`: a client certificate with CN `ordertrack`, for Kafka's mutual-TLS
  listener (mapped to the principal `User:ordertrack`);
* `kafka-keystore.pem`: the server key and certificate chain in one file, Kafka's PEM key store.

Keys are EC P-256 in PKCS#8 (what Kafka's PEM key store reads), unencrypted, mode 0600. The
functions `make_ca` and `issue_cert` are public so tests can make "another CA", "an expired
certificate" or "a certificate for another host" on demand.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_CN = "ordertrack"
SERVER_SANS = ("127.0.0.1", "localhost")
_VALIDITY = dt.timedelta(days=825)
_SKEW = dt.timedelta(minutes=5)  # not-before slightly in the past: tolerates small clock skew


@dataclass(frozen=True)
class Issued:
    """A certificate file, its key file, and (loaded) both."""

    cert_path: Path
    key_path: Path

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key


@dataclass(frozen=True)
class StackTLS:
    dir: Path

    @property
    def ca(self) -> Issued:
        return Issued(self.dir / "ca.pem", self.dir / "ca.key")

    @property
    def server(self) -> Issued:
        return Issued(self.dir / "server.pem", self.dir / "server.key")

    @property
    def client(self) -> Issued:
        return Issued(self.dir / "client.pem", self.dir / "client.key")

    @property
    def kafka_keystore(self) -> Path:
        return self.dir / "kafka-keystore.pem"


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, with `mode` from the first byte on (keys are never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def make_ca(dir: Path, name: str = "ca", *, cn: str = "ordertrack local stack CA",
            not_after: dt.datetime | None = None) -> Issued:
    """A self-signed CA: `<dir>/<name>.pem` and `<dir>/<name>.key` (0600)."""
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW).not_valid_after(not_after or now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    issued = Issued(Path(dir) / f"{name}.pem", Path(dir) / f"{name}.key")
    _write(issued.key_path, _key_pem(key), 0o600)
    _write(issued.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return issued


def issue_cert(ca: Issued, dir: Path, name: str, *, cn: str, sans: Sequence[str] = (),
               server: bool = True, client: bool = False,
               not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> Issued:
    """A leaf certificate signed by `ca`: `<dir>/<name>.pem` and `<dir>/<name>.key` (0600).
    `sans` are IP addresses or DNS names; `server`/`client` set the extended key usages."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_cert, ca_key = ca.cert, ca.key
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _SKEW).not_valid_after(not_after or now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(sans)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    issued = Issued(Path(dir) / f"{name}.pem", Path(dir) / f"{name}.key")
    _write(issued.key_path, _key_pem(key), 0o600)
    _write(issued.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return issued


def ensure_stack_tls(dir: Path) -> StackTLS:
    """Make what is missing under `dir` (the CA, the server and the client certificate, Kafka's
    key store); what exists is kept, so clients holding `ca.pem` stay valid across `up`s."""
    tls = StackTLS(Path(dir))
    tls.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(tls.dir, 0o755)  # the key files themselves are 0600
    fresh_ca = not (tls.ca.cert_path.exists() and tls.ca.key_path.exists())
    if fresh_ca:
        make_ca(tls.dir, "ca")
    changed = fresh_ca
    for issued, kwargs in (
        (tls.server, {"cn": "localhost", "sans": SERVER_SANS, "server": True, "client": False}),
        (tls.client, {"cn": CLIENT_CN, "sans": (), "server": False, "client": True}),
    ):
        if fresh_ca or not (issued.cert_path.exists() and issued.key_path.exists()):
            issue_cert(tls.ca, tls.dir, issued.cert_path.stem, **kwargs)  # type: ignore[arg-type]
            changed = True
    if changed or not tls.kafka_keystore.exists():
        # Kafka's PEM key store: the PKCS#8 key, then the certificate chain, in one file.
        _write(tls.kafka_keystore, tls.server.key_path.read_bytes() + tls.server.cert_path.read_bytes()
               + tls.ca.cert_path.read_bytes(), 0o600)
    return tls
