"""SeaweedFS's own security for the local stack: JWT signing keys and mutual TLS on every gRPC port.

Without it, any account on the host that reaches the filer's HTTP port lists, reads, writes and deletes
every object, and one that reaches the master's deletes whole buckets (`/col/delete`). With it:

- the filer's and the volume server's HTTP APIs accept only requests signed with keys that only the
  `weed mini` process holds (`[jwt.filer_signing]`, `[jwt.signing]` and their `.read` twins): S3, inside
  that process, signs its own requests; a client that learnt a chunk's file id still cannot read it;
- every gRPC port (master, volume, filer, S3, admin) asks for a client certificate of a private CA made
  here; `weed` processes started with this directory as their working directory present it (the bridge's
  `weed filer.meta.tail`), anything else fails its TLS handshake.

weed reads `security.toml` from its working directory first (then `~/.seaweedfs/`, `/etc/seaweedfs/`), so
`weed mini` and the bridge's tail run with `cwd=SeaweedSecurity.directory`. Keys and certificates are
made at the first start and kept (directory 0700, files 0600); the file is written again at every start
with the keys it held, so that a data directory that moved still points at its own certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["GRPC_COMPONENTS", "SeaweedSecurity", "ensure_seaweed_security"]

CERT_VALIDITY_DAYS = 3650
# Tokens that the S3 gateway mints for its own requests to the filer and volume servers; weed's default is
# 10 s, more leaves room for an upload queued on a busy two-core machine.
JWT_EXPIRES_S = 60
JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
# Every gRPC server in `weed mini`, and `client` for the tools (`weed filer.meta.tail`, `weed shell`).
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "client")
# The CA signs certificates (and would sign revocation lists), nothing else.
CA_KEY_USAGE = {
    "digital_signature": True,
    "key_cert_sign": True,
    "crl_sign": True,
    **dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    ),
}


@dataclass(frozen=True)
class SeaweedSecurity:
    directory: Path

    @property
    def toml(self) -> Path:
        return self.directory / "security.toml"

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.directory / "seaweed.crt"

    @property
    def key(self) -> Path:
        return self.directory / "seaweed.key"

    def jwt_keys(self) -> dict[str, str]:
        """The signing keys in security.toml (empty when there is none yet)."""
        try:
            config = tomllib.loads(self.toml.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}
        keys: dict[str, str] = {}
        for section in JWT_SECTIONS:
            node: object = config
            for part in section.split("."):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            key = node.get("key") if isinstance(node, dict) else None
            if isinstance(key, str) and key:
                keys[section] = key
        return keys


def ensure_seaweed_security(directory: Path) -> SeaweedSecurity:
    """Keys and certificates in `directory`: made on the first call, the same ones on every later call."""
    security = SeaweedSecurity(directory.resolve())
    security.directory.mkdir(parents=True, exist_ok=True)
    security.directory.chmod(0o700)
    if not all(path.exists() for path in (security.ca_cert, security.cert, security.key)):
        _write_certificates(security)
    keys = security.jwt_keys()
    for section in JWT_SECTIONS:
        keys.setdefault(section, secrets.token_urlsafe(32))
    _write_private(security.toml, _security_toml(security, keys).encode())
    return security


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to a file that no other account can read, not even between its creation and a chmod."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def _security_toml(security: SeaweedSecurity, keys: dict[str, str]) -> str:
    sections = ["# Written by leadersboard at each start of the local stack (tools/stack/seaweed_security.py)."]
    sections += [f'[{name}]\nkey = "{keys[name]}"\nexpires_after_seconds = {JWT_EXPIRES_S}\n' for name in JWT_SECTIONS]
    sections += [
        # No anonymous UI on the volume server, no directory metadata from the filer.
        "[access]\nui = false\n",
        "[filer.expose_directory_metadata]\nenabled = false\n",
        f'[grpc]\nca = "{security.ca_cert}"\n',
    ]
    sections += [f'[grpc.{name}]\ncert = "{security.cert}"\nkey = "{security.key}"\n' for name in GRPC_COMPONENTS]
    return "\n".join(sections)


def _write_certificates(security: SeaweedSecurity) -> None:
    """A private CA and one certificate it signs, for both ends of every gRPC connection.

    weed does not check host names, and every end is the same trusted program: one certificate serves all.
    The CA's key is dropped once it has signed: nothing else can ever be issued by this CA.
    """
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=CERT_VALIDITY_DAYS))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LeadersBoard local SeaweedFS CA")])
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(**CA_KEY_USAGE), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leadersboard-seaweedfs")])
    cert = (
        _builder(name, ca_name, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(security.key, private)
    _write_private(security.cert, cert.public_bytes(pem))
    _write_private(security.ca_cert, ca_cert.public_bytes(pem))


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    validity: tuple[datetime.datetime, datetime.datetime],
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )
