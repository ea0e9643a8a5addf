"""Checks of a certificate and key before they are uploaded: nothing leaves this machine
unless the key matches the certificate, the chain links up and its names cover the site."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

from adapto_ops.errors import AdaptoError


@dataclass(frozen=True)
class CheckedPair:
    """A certificate chain (leaf first) and its key, as PEM, with the leaf's facts."""

    cert_pem: bytes
    key_pem: bytes
    names: list[str]
    not_after: dt.datetime

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400


def _dns_names(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in sans.get_values_for_type(x509.DNSName)]


def check_pair(cert_pem: bytes, key_pem: bytes, server_names: list[str], *,
               cert_where: str = "certificate", key_where: str = "key",
               now: dt.datetime | None = None) -> CheckedPair:
    """The pair checked, or AdaptoError naming the first problem (and the file)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    from adapto_ops.health.local import ssl_name_matches

    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise AdaptoError(f"{cert_where}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        reason = "encrypted (give it without a passphrase)" if "password" in str(exc).lower() \
            else "not a PEM private key"
        raise AdaptoError(f"{key_where}: {reason}") from None
    leaf = chain[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise AdaptoError(f"{key_where}: the key does not match the certificate in {cert_where} "
                          f"({leaf.subject.rfc4514_string()}); nothing was uploaded")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise AdaptoError(
                f"{cert_where}: the chain is broken: {child.subject.rfc4514_string()} is not "
                f"issued by the next certificate ({parent.subject.rfc4514_string()}); "
                "put the leaf first, then each issuer") from None
    names = _dns_names(leaf)
    uncovered = [n for n in server_names if not any(ssl_name_matches(p, n) for p in names)]
    if uncovered:
        raise AdaptoError(f"{cert_where}: does not cover {', '.join(uncovered)} "
                          f"(its names: {', '.join(names) or 'none'}); nothing was uploaded")
    now = now or dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc <= now:
        raise AdaptoError(f"{cert_where}: expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if leaf.not_valid_before_utc > now:
        raise AdaptoError(f"{cert_where}: not valid before {leaf.not_valid_before_utc:%Y-%m-%d}")
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return CheckedPair(pem, key_pem, names, leaf.not_valid_after_utc)
