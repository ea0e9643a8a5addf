"""Certificates: self-signed ones for `render --check`, and a small CA for the sandbox.

The sandbox signs its site certificate with a CA of its own (kept beside it),
so `adapto health` can verify the served certificate for real, trusting that
CA through the inventory (``health.ca_file``), as a client trusts a public CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _sans(names: list[str]) -> Any:
    from cryptography import x509

    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(sans)


def _write_pair(cert: Any, key: Any, cert_path: Path, key_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(common_name: str, issuer: Any, key: Any, start: dt.datetime, days: int) -> Any:
    """A certificate builder with what every certificate here shares: subject, dates, serial."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )


def _five_minutes_ago() -> dt.datetime:
    # A little slack for clocks that run behind the machine that made the certificate.
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


def write_self_signed(
    names: list[str], cert_path: Path, key_path: Path, *, days: int = 30
) -> None:
    """An ECDSA P-256 certificate valid for ``names`` (DNS names or IP addresses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _key()
    cert = (
        _builder(names[0], None, key, _five_minutes_ago(), days)
        .add_extension(_sans(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_pair(cert, key, cert_path, key_path)


def write_ca(name: str, cert_path: Path, key_path: Path, *, days: int = 3650) -> None:
    """A CA certificate and key (key mode 0600) that can sign site certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _key()
    cert = (
        _builder(name, None, key, _five_minutes_ago(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_pair(cert, key, cert_path, key_path)


def write_signed(
    names: list[str], cert_path: Path, key_path: Path, ca_cert_path: Path, ca_key_path: Path,
    *, days: int = 30, valid_from: dt.datetime | None = None,
) -> None:
    """A leaf certificate for ``names`` signed by the CA; ``valid_from`` may lie in the past
    (tests make an expired certificate that way)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = _key()
    cert = (
        _builder(names[0], ca.subject, key, valid_from or _five_minutes_ago(), days)
        .add_extension(_sans(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_pair(cert, key, cert_path, key_path)


def issued_by(cert_path: Path, ca_cert_path: Path) -> bool:
    """True when the certificate at ``cert_path`` was signed by the CA at ``ca_cert_path``."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return True
