"""What a certificate says (no secrets): `CertificateInfo` and its chain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from custom_components.secure_remote_access.protocol.names import (
    names_cover_host,
    normalize_san_name,
)


def require_aware(now: datetime) -> datetime:
    """Return ``now``; raise ValueError for a naive datetime."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEntry:
    """A certificate of the chain after the leaf (no secrets)."""

    subject: str
    issuer: str
    serial_number: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateInfo:
    """What a leaf certificate (and the chain given with it) says; no secrets.

    ``serial_number`` is lower-case hex without separators; ``fingerprint_sha256``
    is upper-case hex pairs joined by colons (as ``openssl x509 -fingerprint``).
    ``chain`` lists the certificates after the leaf, in the given order;
    ``chain_valid`` is True when each certificate is signed by the next one
    (trivially True for a lone leaf), else ``chain_error`` says where it breaks.
    ``key_matches`` is None when no private key was inspected.
    """

    subject: str
    common_name: str | None
    issuer: str
    issuer_common_name: str | None
    serial_number: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_type: str
    key_size: int | None
    self_signed: bool
    is_ca: bool
    chain: tuple[ChainEntry, ...] = ()
    chain_valid: bool = True
    chain_error: str | None = None
    key_matches: bool | None = None

    @property
    def chain_length(self) -> int:
        """Return the number of certificates, leaf included."""
        return 1 + len(self.chain)

    def remaining(self, now: datetime) -> timedelta:
        """Return the time left until ``not_after`` (negative once expired)."""
        return self.not_after - require_aware(now)

    def days_remaining(self, now: datetime) -> int:
        """Return whole days left, rounded down (-1 just after expiry)."""
        return self.remaining(now).days

    def is_expired(self, now: datetime) -> bool:
        """Return True after ``not_after`` (RFC 5280: ``not_after`` is inclusive)."""
        return require_aware(now) > self.not_after

    def is_not_yet_valid(self, now: datetime) -> bool:
        """Return True before ``not_before``."""
        return require_aware(now) < self.not_before

    def is_valid_at(self, now: datetime) -> bool:
        """Return True within the validity period."""
        return not self.is_expired(now) and not self.is_not_yet_valid(now)

    def covers(self, host: str) -> bool:
        """Return True when the SANs cover ``host`` (RFC 6125 rules)."""
        return names_cover_host(self.dns_names, self.ip_addresses, host)

    def missing_names(self, names: Iterable[str]) -> list[str]:
        """Return the names (host names or ``*.`` patterns) not covered."""
        return [name for name in names if not self._covers_name(name)]

    def _covers_name(self, name: str) -> bool:
        if "*" not in name:
            return self.covers(name)
        wanted = normalize_san_name(name)
        return wanted is not None and any(
            normalize_san_name(dns_name) == wanted for dns_name in self.dns_names
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (ISO 8601 dates) for diagnostics."""
        return {
            "subject": self.subject,
            "common_name": self.common_name,
            "issuer": self.issuer,
            "issuer_common_name": self.issuer_common_name,
            "serial_number": self.serial_number,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "key_type": self.key_type,
            "key_size": self.key_size,
            "self_signed": self.self_signed,
            "is_ca": self.is_ca,
            "chain_length": self.chain_length,
            "chain_valid": self.chain_valid,
            "chain_error": self.chain_error,
            "chain": [
                {
                    "subject": entry.subject,
                    "issuer": entry.issuer,
                    "serial_number": entry.serial_number,
                    "fingerprint_sha256": entry.fingerprint_sha256,
                    "not_before": entry.not_before.isoformat(),
                    "not_after": entry.not_after.isoformat(),
                }
                for entry in self.chain
            ],
            "key_matches": self.key_matches,
        }


def key_type_and_size(key: PublicKeyTypes | PrivateKeyTypes) -> tuple[str, int | None]:
    """Return e.g. ``("EC", 256)``, ``("RSA", 2048)`` or ``("Ed25519", 256)``."""
    match key:
        case rsa.RSAPublicKey() | rsa.RSAPrivateKey():
            return "RSA", key.key_size
        case ec.EllipticCurvePublicKey() | ec.EllipticCurvePrivateKey():
            return "EC", key.curve.key_size
        case ed25519.Ed25519PublicKey() | ed25519.Ed25519PrivateKey():
            return "Ed25519", 256
        case ed448.Ed448PublicKey() | ed448.Ed448PrivateKey():
            return "Ed448", 456
        case dsa.DSAPublicKey() | dsa.DSAPrivateKey():
            return "DSA", key.key_size
    return type(key).__name__.removeprefix("_"), None
