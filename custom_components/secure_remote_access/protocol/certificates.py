"""Certificate inspection for files, in-memory PEM and remote TLS endpoints.

No Home Assistant imports. Functions named ``read_*`` touch the file system and
block: callers in the event loop run them with ``hass.async_add_executor_job``.
The ``inspect_endpoint*`` coroutines do their own blocking parts (reading a CA
bundle, loading trust stores) in the loop's default executor.

Every error raised on purpose derives from `CertificateError`, whose ``reason``
is a stable snake_case code suitable for translation keys and diagnostics.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import functools
import hashlib
import ipaddress
import os
import re
import socket
import ssl
import stat
from typing import Any, ClassVar, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtensionOID, NameOID

type StrPath = str | os.PathLike[str]
type Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Async callable ``(host, port) -> IP address strings``; raises OSError on failure."""

MAX_FILE_SIZE: Final = 1024 * 1024
"""Largest certificate or key file accepted (1 MiB)."""
MAX_CA_BUNDLE_SIZE: Final = 4 * 1024 * 1024
"""Largest CA bundle accepted for endpoint verification (4 MiB)."""
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_CONCURRENCY: Final = 10
DEFAULT_CLOCK_SKEW: Final = timedelta(minutes=5)

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL
)
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_CERTIFICATE_LABELS: Final = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})
_PRIVATE_KEY_LABELS: Final = frozenset(
    {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"DSA PRIVATE KEY"}
)


# --------------------------------------------------------------------- errors


class CertificateError(Exception):
    """Base class of every error raised on purpose by the protocol modules."""

    reason: ClassVar[str] = "error"

    def __init__(self, message: str, *, path: StrPath | None = None) -> None:
        """Store the message and, when a file was involved, its path."""
        super().__init__(message)
        self.message = message
        self.path: str | None = os.fspath(path) if path is not None else None

    def __str__(self) -> str:
        """Return the message, prefixed with the path when known."""
        return f"{self.path}: {self.message}" if self.path else self.message


class CertificateFileError(CertificateError):
    """A certificate, key or CA bundle file cannot be read."""

    reason = "read_error"


class CertificateFileNotFoundError(CertificateFileError):
    """The file does not exist."""

    reason = "not_found"


class CertificatePermissionError(CertificateFileError):
    """The file exists but may not be read."""

    reason = "permission_denied"


class CertificateIsDirectoryError(CertificateFileError):
    """The path is a directory, not a file."""

    reason = "is_directory"


class CertificateNotRegularFileError(CertificateFileError):
    """The path is a FIFO, socket or device, not a regular file."""

    reason = "not_regular_file"


class CertificateFileEmptyError(CertificateFileError):
    """The file is empty or holds only white space."""

    reason = "empty"


class CertificateFileTooLargeError(CertificateFileError):
    """The file is larger than the accepted maximum."""

    reason = "too_large"


class CertificateFormatError(CertificateError):
    """The data holds no parseable certificate."""

    reason = "invalid_format"


class PrivateKeyFormatError(CertificateError):
    """The data holds no parseable private key, or several."""

    reason = "invalid_key"


class PrivateKeyEncryptedError(PrivateKeyFormatError):
    """The private key is encrypted; only unencrypted keys are supported."""

    reason = "key_encrypted"


class PairVerificationError(CertificateError):
    """A certificate + key pair failed verification before being installed."""

    reason = "verification_failed"


class KeyMismatchError(PairVerificationError):
    """The private key does not belong to the leaf certificate."""

    reason = "key_mismatch"


class NamesNotCoveredError(PairVerificationError):
    """The leaf certificate does not cover every expected name."""

    reason = "names_not_covered"

    def __init__(self, message: str, *, missing: Sequence[str]) -> None:
        """Remember the names that are not covered."""
        super().__init__(message)
        self.missing: tuple[str, ...] = tuple(missing)


class ChainInvalidError(PairVerificationError):
    """A certificate in the chain is not signed by the next one."""

    reason = "chain_invalid"


class CertificateNotYetValidError(PairVerificationError):
    """The leaf certificate's validity starts in the future."""

    reason = "not_yet_valid"


class CertificateExpiredError(PairVerificationError):
    """The leaf certificate has expired (or expires within the clock skew)."""

    reason = "expired"


class EndpointError(CertificateError):
    """A remote TLS endpoint could not be inspected."""

    reason = "endpoint_error"


class EndpointNameResolutionError(EndpointError):
    """The host name could not be resolved (or is not a valid host name)."""

    reason = "name_resolution_failed"


class EndpointConnectionError(EndpointError):
    """The TCP connection failed (unreachable network or host...)."""

    reason = "connection_failed"


class EndpointConnectionRefusedError(EndpointConnectionError):
    """Nothing listens on the port."""

    reason = "connection_refused"


class EndpointConnectionResetError(EndpointConnectionError):
    """The peer reset or closed the connection during the handshake."""

    reason = "connection_reset"


class EndpointTimeoutError(EndpointError):
    """The check did not finish within the timeout."""

    reason = "timeout"


class EndpointHandshakeError(EndpointError):
    """The TLS handshake failed (not TLS, protocol or cipher mismatch...)."""

    reason = "handshake_failed"


class EndpointNoCertificateError(EndpointError):
    """The peer completed the handshake without presenting a certificate."""

    reason = "no_certificate"


# ---------------------------------------------------------------- data types


def _require_aware(now: datetime) -> datetime:
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
        return self.not_after - _require_aware(now)

    def days_remaining(self, now: datetime) -> int:
        """Return whole days left, rounded down (-1 just after expiry)."""
        return self.remaining(now).days

    def is_expired(self, now: datetime) -> bool:
        """Return True after ``not_after`` (RFC 5280: ``not_after`` is inclusive)."""
        return _require_aware(now) > self.not_after

    def is_not_yet_valid(self, now: datetime) -> bool:
        """Return True before ``not_before``."""
        return _require_aware(now) < self.not_before

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
        wanted = _normalize_host(name)
        return wanted is not None and any(
            _normalize_host(dns_name) == wanted for dns_name in self.dns_names
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


# ------------------------------------------------------------ reading files


def read_file_limited(path: StrPath, *, max_size: int = MAX_FILE_SIZE) -> bytes:
    """Read a whole regular file of at most ``max_size`` bytes. Blocking.

    Raises a `CertificateFileError` subclass for a missing, unreadable, empty
    (white space only), oversized or non-regular file.
    """
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as err:
        raise CertificateFileNotFoundError("file not found", path=path) from err
    except PermissionError as err:
        raise CertificatePermissionError("permission denied", path=path) from err
    except IsADirectoryError as err:
        raise CertificateIsDirectoryError("is a directory", path=path) from err
    except NotADirectoryError as err:
        raise CertificateFileNotFoundError(
            "a parent of the path is not a directory", path=path
        ) from err
    except OSError as err:
        raise CertificateFileError(f"cannot open: {err.strerror}", path=path) from err
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CertificateIsDirectoryError("is a directory", path=path)
        if not stat.S_ISREG(info.st_mode):
            raise CertificateNotRegularFileError("not a regular file", path=path)
        if info.st_size > max_size:
            raise CertificateFileTooLargeError(
                f"{info.st_size} bytes, more than the {max_size} accepted", path=path
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, max_size + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_size:
                raise CertificateFileTooLargeError(
                    f"more than the {max_size} bytes accepted", path=path
                )
    except OSError as err:
        raise CertificateFileError(f"cannot read: {err.strerror}", path=path) from err
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if not data.strip():
        raise CertificateFileEmptyError("file is empty", path=path)
    return data


def read_certificate_file(
    path: StrPath, key_path: StrPath | None = None
) -> CertificateInfo:
    """Inspect a PEM (one or more certificates) or DER file. Blocking.

    With ``key_path``, also report whether that private key matches the leaf.
    """
    certificates = read_certificates(path)
    key = read_private_key_file(key_path) if key_path is not None else None
    return build_certificate_info(certificates, key)


def read_certificates(path: StrPath) -> list[x509.Certificate]:
    """Load the certificates of a PEM or DER file, leaf first. Blocking."""
    data = read_file_limited(path)
    try:
        return parse_certificates(data)
    except CertificateError as err:
        err.path = os.fspath(path)
        raise


def read_private_key_file(path: StrPath) -> PrivateKeyTypes:
    """Load an unencrypted private key file (PEM or DER). Blocking."""
    data = read_file_limited(path)
    try:
        return parse_private_key(data)
    except CertificateError as err:
        err.path = os.fspath(path)
        raise


# ---------------------------------------------------------- parsing in memory


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)


def _pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Return ``(label, body)`` for every PEM block, CRLF tolerated."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return [(match[1], match[2]) for match in _PEM_BLOCK.finditer(data)]


def _decode_pem_body(body: bytes, index: int) -> bytes:
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise CertificateFormatError(f"PEM block {index} is not valid base64") from err


def looks_like_pem(data: bytes | str) -> bool:
    """Return True when the data holds a PEM ``-----BEGIN`` marker."""
    return b"-----BEGIN " in _as_bytes(data)


def parse_pem_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Parse every CERTIFICATE block (text around and other blocks ignored)."""
    blocks = _pem_blocks(_as_bytes(data))
    certificates: list[x509.Certificate] = []
    for label, body in blocks:
        if label not in _CERTIFICATE_LABELS:
            continue
        index = len(certificates) + 1
        try:
            certificates.append(
                x509.load_der_x509_certificate(_decode_pem_body(body, index))
            )
        except ValueError as err:
            raise CertificateFormatError(
                f"certificate {index} cannot be parsed: {err}"
            ) from err
    if not certificates:
        if any(b"PRIVATE KEY" in label for label, _ in blocks):
            raise CertificateFormatError(
                "holds a private key but no certificate (were the files swapped?)"
            )
        raise CertificateFormatError("no PEM certificate found")
    return certificates


def parse_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Parse PEM (one or more certificates) or a single DER certificate."""
    raw = _as_bytes(data)
    if not raw.strip():
        raise CertificateFormatError("no data")
    if looks_like_pem(raw):
        return parse_pem_certificates(raw)
    try:
        return [x509.load_der_x509_certificate(raw)]
    except ValueError as err:
        raise CertificateFormatError("neither a PEM nor a DER certificate") from err


def parse_private_key(data: bytes | str) -> PrivateKeyTypes:
    """Parse one unencrypted private key: PEM (PKCS#8, PKCS#1, SEC1) or DER."""
    raw = _as_bytes(data)
    if not raw.strip():
        raise PrivateKeyFormatError("no data")
    if not looks_like_pem(raw):
        try:
            return serialization.load_der_private_key(raw, password=None)
        except TypeError as err:
            raise PrivateKeyEncryptedError("private key is encrypted") from err
        except (ValueError, UnsupportedAlgorithm) as err:
            raise PrivateKeyFormatError("neither a PEM nor a DER private key") from err
    blocks = _pem_blocks(raw)
    if any(label == b"ENCRYPTED PRIVATE KEY" for label, _ in blocks) or any(
        b"Proc-Type: 4,ENCRYPTED" in body for _, body in blocks
    ):
        raise PrivateKeyEncryptedError("private key is encrypted")
    keys = [(label, body) for label, body in blocks if label in _PRIVATE_KEY_LABELS]
    if not keys:
        if any(label in _CERTIFICATE_LABELS for label, _ in blocks):
            raise PrivateKeyFormatError(
                "holds a certificate but no private key (were the files swapped?)"
            )
        raise PrivateKeyFormatError("no PEM private key found")
    if len(keys) > 1:
        raise PrivateKeyFormatError(f"holds {len(keys)} private keys, expected one")
    label, body = keys[0]
    pem = b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, body.strip(), label)
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError as err:
        raise PrivateKeyEncryptedError("private key is encrypted") from err
    except (ValueError, UnsupportedAlgorithm) as err:
        raise PrivateKeyFormatError(f"private key cannot be parsed: {err}") from err


# ------------------------------------------------------------ inspection


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


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches_certificate(
    key: PrivateKeyTypes, certificate: x509.Certificate
) -> bool:
    """Return True when the private key's public half is the certificate's."""
    try:
        return _spki(key.public_key()) == _spki(certificate.public_key())
    except ValueError, UnsupportedAlgorithm:
        return False


def is_signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Return True when ``issuer`` is named as issuer and its signature checks."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm:
        return False
    return True


def chain_problem(certificates: Sequence[x509.Certificate]) -> str | None:
    """Return why the chain does not link up (each signed by the next), or None."""
    for index in range(len(certificates) - 1):
        child, parent = certificates[index], certificates[index + 1]
        if not is_signed_by(child, parent):
            return (
                f"certificate {index + 1} ({child.subject.rfc4514_string()}) is not "
                f"signed by certificate {index + 2} ({parent.subject.rfc4514_string()})"
            )
    return None


def _common_name(name: x509.Name) -> str | None:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes:
        return None
    value = attributes[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _fingerprint(certificate: x509.Certificate) -> str:
    digest = hashlib.sha256(
        certificate.public_bytes(serialization.Encoding.DER)
    ).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)).upper()


def _subject_alt_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return [], []
    dns_names = extension.value.get_values_for_type(x509.DNSName)
    ip_addresses = [
        str(address) for address in extension.value.get_values_for_type(x509.IPAddress)
    ]
    return dns_names, ip_addresses


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        extension = certificate.extensions.get_extension_for_oid(
            ExtensionOID.BASIC_CONSTRAINTS
        )
    except x509.ExtensionNotFound:
        return False
    value = extension.value
    return isinstance(value, x509.BasicConstraints) and value.ca


def build_certificate_info(
    certificates: Sequence[x509.Certificate], key: PrivateKeyTypes | None = None
) -> CertificateInfo:
    """Build the `CertificateInfo` of a leaf-first chain (and optional key)."""
    if not certificates:
        raise CertificateFormatError("no certificate")
    leaf = certificates[0]
    try:
        public_key: CertificatePublicKeyTypes = leaf.public_key()
        key_type, key_size = key_type_and_size(public_key)
    except ValueError, UnsupportedAlgorithm:
        key_type, key_size = "unknown", None
    try:
        dns_names, ip_addresses = _subject_alt_names(leaf)
        return CertificateInfo(
            subject=leaf.subject.rfc4514_string(),
            common_name=_common_name(leaf.subject),
            issuer=leaf.issuer.rfc4514_string(),
            issuer_common_name=_common_name(leaf.issuer),
            serial_number=format(leaf.serial_number, "x"),
            fingerprint_sha256=_fingerprint(leaf),
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            dns_names=tuple(dns_names),
            ip_addresses=tuple(ip_addresses),
            key_type=key_type,
            key_size=key_size,
            self_signed=leaf.issuer == leaf.subject and is_signed_by(leaf, leaf),
            is_ca=_is_ca(leaf),
            chain=tuple(
                ChainEntry(
                    subject=cert.subject.rfc4514_string(),
                    issuer=cert.issuer.rfc4514_string(),
                    serial_number=format(cert.serial_number, "x"),
                    fingerprint_sha256=_fingerprint(cert),
                    not_before=cert.not_valid_before_utc,
                    not_after=cert.not_valid_after_utc,
                )
                for cert in certificates[1:]
            ),
            chain_valid=(problem := chain_problem(certificates)) is None,
            chain_error=problem,
            key_matches=None if key is None else key_matches_certificate(key, leaf),
        )
    except (  # lazily parsed fields of a malformed certificate
        ValueError,
        UnsupportedAlgorithm,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as err:
        raise CertificateFormatError(f"malformed certificate: {err}") from err


def inspect_certificate_bytes(
    data: bytes | str, *, key_data: bytes | str | None = None
) -> CertificateInfo:
    """Inspect PEM or DER certificate data in memory (and optional key data)."""
    certificates = parse_certificates(data)
    key = parse_private_key(key_data) if key_data is not None else None
    return build_certificate_info(certificates, key)


def inspect_pem(
    pem: bytes | str, *, key_pem: bytes | str | None = None
) -> CertificateInfo:
    """Inspect PEM certificates (leaf first) in memory (and an optional key)."""
    certificates = parse_pem_certificates(pem)
    key = parse_private_key(key_pem) if key_pem is not None else None
    return build_certificate_info(certificates, key)


def verify_certificate_pair(
    fullchain_pem: bytes | str,
    key_pem: bytes | str,
    *,
    expected_names: Iterable[str],
    now: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> CertificateInfo:
    """Check a fullchain + key pair before installing it, in memory.

    Requires: parseable chain that links up, key matching the leaf, every
    expected name covered (``*.x`` patterns need an identical SAN), and
    ``not_before <= now + clock_skew < not_after``. Raises `CertificateFormatError`,
    `PrivateKeyFormatError` or a `PairVerificationError` subclass.
    """
    now = _require_aware(now or datetime.now(UTC))
    info = inspect_pem(fullchain_pem, key_pem=key_pem)
    if not info.key_matches:
        raise KeyMismatchError("the private key does not match the certificate")
    if not info.chain_valid:
        raise ChainInvalidError(f"the chain does not link up: {info.chain_error}")
    if missing := info.missing_names(expected_names):
        raise NamesNotCoveredError(
            f"the certificate does not cover {', '.join(missing)}", missing=missing
        )
    if info.not_before > now + clock_skew:
        raise CertificateNotYetValidError(
            f"the certificate is valid only from {info.not_before.isoformat()}"
        )
    if now + clock_skew >= info.not_after:
        raise CertificateExpiredError(
            f"the certificate expired (or expires within {clock_skew}) "
            f"at {info.not_after.isoformat()}"
        )
    return info


# ---------------------------------------------------------- name matching


def _normalize_host(name: str) -> str | None:
    """Return a lower-case ASCII (IDNA) name without trailing dot, or None."""
    name = name.strip().rstrip(".")
    if not name or len(name) > 253:
        return None
    try:
        ascii_name = name.encode("ascii").decode("ascii")
    except UnicodeEncodeError:
        try:
            ascii_name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    ascii_name = ascii_name.lower()
    if any(not label or len(label) > 63 for label in ascii_name.split(".")):
        return None
    return ascii_name


def _ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def hostname_matches(pattern: str, host: str) -> bool:
    """Match a DNS-name SAN against a host name (RFC 6125, section 6.4).

    ``*`` only as the complete left-most label, standing for exactly one
    non-empty label; at least two labels after it (no ``*.com``); no match
    on the bare parent; case-insensitive; IDNA; IP addresses never match.
    """
    if _ip_address(host) is not None:
        return False
    normalized_host = _normalize_host(host)
    normalized_pattern = _normalize_host(pattern)
    if normalized_host is None or normalized_pattern is None or "*" in normalized_host:
        return False
    pattern_labels = normalized_pattern.split(".")
    host_labels = normalized_host.split(".")
    if pattern_labels[0] != "*":
        return "*" not in normalized_pattern and normalized_pattern == normalized_host
    if "*" in ".".join(pattern_labels[1:]) or len(pattern_labels) < 3:
        return False
    return (
        len(host_labels) == len(pattern_labels)
        and host_labels[1:] == pattern_labels[1:]
    )


def names_cover_host(
    dns_names: Iterable[str], ip_addresses: Iterable[str], host: str
) -> bool:
    """Return True when the SANs cover ``host``; IPs match only IP SANs."""
    if (address := _ip_address(host)) is not None:
        return any(_ip_address(value) == address for value in ip_addresses)
    return any(hostname_matches(pattern, host) for pattern in dns_names)


# --------------------------------------------------------- remote endpoints


class VerificationStatus(StrEnum):
    """Outcome of verifying an endpoint's chain against the trust store."""

    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    SELF_SIGNED = "self_signed"
    UNKNOWN_ISSUER = "unknown_issuer"
    NAME_MISMATCH = "name_mismatch"
    OTHER = "other"


# OpenSSL X509_V_ERR_* codes (x509_vfy.h).
_VERIFY_CODE_STATUS: Final[dict[int, VerificationStatus]] = {
    2: VerificationStatus.UNKNOWN_ISSUER,  # unable to get issuer certificate
    9: VerificationStatus.NOT_YET_VALID,  # certificate is not yet valid
    10: VerificationStatus.EXPIRED,  # certificate has expired
    18: VerificationStatus.SELF_SIGNED,  # self-signed certificate (depth 0)
    19: VerificationStatus.UNKNOWN_ISSUER,  # self-signed (untrusted) root in chain
    20: VerificationStatus.UNKNOWN_ISSUER,  # unable to get local issuer certificate
    21: VerificationStatus.UNKNOWN_ISSUER,  # unable to verify the first certificate
    27: VerificationStatus.UNKNOWN_ISSUER,  # certificate not trusted
    62: VerificationStatus.NAME_MISMATCH,  # hostname mismatch
    64: VerificationStatus.NAME_MISMATCH,  # IP address mismatch
}


def verification_status_for(code: int) -> VerificationStatus:
    """Map an OpenSSL verify error code to a `VerificationStatus`."""
    return _VERIFY_CODE_STATUS.get(code, VerificationStatus.OTHER)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A TLS endpoint to inspect; ``ca_bundle`` replaces the system trust store."""

    host: str
    port: int = 443
    server_name: str | None = None
    ca_bundle: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointCertificate:
    """The certificate an endpoint presents and how its verification went.

    ``certificate`` describes the chain as sent by the server (leaf first),
    fetched even when verification fails. ``verification`` is judged by
    OpenSSL against ``ca_bundle`` (None: system trust store) for the name
    ``server_name or host``; when it is not VALID, ``verification_message`` and
    ``verification_code`` carry OpenSSL's verify error.
    """

    host: str
    port: int
    server_name: str | None
    address: str
    certificate: CertificateInfo
    verification: VerificationStatus
    verification_message: str | None = None
    verification_code: int | None = None
    ca_bundle: str | None = None
    tls_version: str | None = None
    cipher: str | None = None

    @property
    def verified(self) -> bool:
        """Return True when the chain verified for the requested name."""
        return self.verification is VerificationStatus.VALID

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict for diagnostics."""
        return {
            "host": self.host,
            "port": self.port,
            "server_name": self.server_name,
            "address": self.address,
            "verification": self.verification.value,
            "verification_message": self.verification_message,
            "verification_code": self.verification_code,
            "ca_bundle": self.ca_bundle,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "certificate": self.certificate.as_dict(),
        }


@functools.cache
def _fetch_context() -> ssl.SSLContext:
    """Return the shared non-verifying client context (built in an executor)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.cache
def _system_verify_context() -> ssl.SSLContext:
    """Return the shared context trusting the system store (built in an executor)."""
    return ssl.create_default_context()


def build_verify_context(ca_bundle: StrPath | None = None) -> ssl.SSLContext:
    """Return a verifying client context for the system store or a CA bundle. Blocking.

    A CA bundle (PEM or DER, up to 4 MiB) replaces the system store, like
    ``curl --cacert``. Bad bundles raise `CertificateFileError` or
    `CertificateFormatError`.
    """
    _fetch_context()
    if ca_bundle is None:
        return _system_verify_context()
    data = read_file_limited(ca_bundle, max_size=MAX_CA_BUNDLE_SIZE)
    try:
        certificates = parse_certificates(data)
    except CertificateError as err:
        err.path = os.fspath(ca_bundle)
        raise
    pem = "".join(
        cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        for cert in certificates
    )
    try:
        return ssl.create_default_context(cadata=pem)
    except ssl.SSLError as err:
        raise CertificateFormatError(
            f"CA bundle rejected by OpenSSL: {err}", path=ca_bundle
        ) from err


async def _default_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    )
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def _resolve(host: str, port: int, resolver: Resolver | None) -> list[str]:
    if _ip_address(host) is not None:
        return [str(_ip_address(host))]
    normalized = _normalize_host(host)
    if normalized is None or not _HOST_NAME.fullmatch(normalized):
        raise EndpointNameResolutionError(f"invalid host name {host!r}")
    if resolver is None and (
        normalized == "invalid" or normalized.endswith(".invalid")
    ):
        # RFC 6761 section 6.4: never resolvable, answer without asking DNS.
        raise EndpointNameResolutionError(f"cannot resolve {host}: reserved .invalid")
    try:
        addresses = list(await (resolver or _default_resolver)(normalized, port))
    except OSError as err:
        raise EndpointNameResolutionError(f"cannot resolve {host}: {err}") from err
    if not addresses:
        raise EndpointNameResolutionError(f"cannot resolve {host}: no address")
    return addresses


class _DiscardProtocol(asyncio.Protocol):
    """Ignore whatever the server sends after the handshake."""


async def _handshake(
    address: str, port: int, context: ssl.SSLContext, server_hostname: str
) -> asyncio.Transport:
    """Connect and complete the TLS handshake; map failures to typed errors."""
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await loop.create_connection(
            _DiscardProtocol,
            address,
            port,
            ssl=context,
            server_hostname=server_hostname,
        )
    except ssl.SSLCertVerificationError:
        raise
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as err:
        raise EndpointConnectionResetError(
            f"connection closed during the TLS handshake: {err}"
        ) from err
    except ssl.SSLError as err:
        raise EndpointHandshakeError(
            f"TLS handshake failed: {err.reason or err}"
        ) from err
    except ConnectionRefusedError as err:
        raise EndpointConnectionRefusedError(
            f"connection refused by {address} port {port}"
        ) from err
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as err:
        raise EndpointConnectionResetError(
            f"connection reset by {address} port {port}"
        ) from err
    except TimeoutError:
        raise
    except OSError as err:
        raise EndpointConnectionError(
            f"cannot connect to {address} port {port}: {err.strerror or err}"
        ) from err
    return transport


def _peer_chain(ssl_object: ssl.SSLObject | None) -> list[x509.Certificate]:
    """Return the chain as sent by the peer (leaf first); empty if none."""
    if ssl_object is None:
        return []
    chain: Sequence[bytes] = ssl_object.get_unverified_chain() or []
    if not chain and (leaf := ssl_object.getpeercert(binary_form=True)):
        chain = [leaf]
    try:
        return [x509.load_der_x509_certificate(bytes(der)) for der in chain]
    except ValueError as err:
        raise CertificateFormatError(
            f"the peer sent an unparseable certificate: {err}"
        ) from err


async def _close(transport: asyncio.Transport) -> None:
    """Drop the connection at once (no close_notify wait) and let it settle."""
    transport.abort()
    await asyncio.sleep(0)


async def _inspect_address(
    host: str,
    port: int,
    address: str,
    server_name: str | None,
    verify_context: ssl.SSLContext,
    ca_bundle: str | None,
) -> EndpointCertificate:
    name = server_name or host
    status = VerificationStatus.VALID
    message: str | None = None
    code: int | None = None
    try:
        transport = await _handshake(address, port, verify_context, name)
    except ssl.SSLCertVerificationError as err:
        code = err.verify_code
        message = err.verify_message or str(err)
        status = verification_status_for(code)
        transport = await _handshake(address, port, _fetch_context(), name)
    try:
        ssl_object = transport.get_extra_info("ssl_object")
        chain = _peer_chain(ssl_object)
        tls_version = ssl_object.version() if ssl_object is not None else None
        cipher_info = ssl_object.cipher() if ssl_object is not None else None
    finally:
        await _close(transport)
    if not chain:
        raise EndpointNoCertificateError(
            f"{address} port {port} presented no certificate"
        )
    return EndpointCertificate(
        host=host,
        port=port,
        server_name=server_name,
        address=address,
        certificate=build_certificate_info(chain),
        verification=status,
        verification_message=message,
        verification_code=code,
        ca_bundle=ca_bundle,
        tls_version=tls_version,
        cipher=cipher_info[0] if cipher_info else None,
    )


async def inspect_endpoint(
    host: str,
    port: int = 443,
    *,
    server_name: str | None = None,
    ca_bundle: StrPath | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    resolver: Resolver | None = None,
) -> EndpointCertificate:
    """Fetch and judge the certificate of ``host:port``; never blocks the loop.

    One verifying handshake (SNI and verified name: ``server_name or host``);
    when verification fails, a second, non-verifying handshake fetches the
    chain anyway. ``timeout_seconds`` bounds the whole check. Addresses from the
    resolver are tried in order while connections are refused or fail.
    Raises an `EndpointError` subclass, or a `CertificateFileError` /
    `CertificateFormatError` for a bad ``ca_bundle``.
    """
    server_name = server_name or None
    bundle = os.fspath(ca_bundle) if ca_bundle is not None else None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_seconds):
            verify_context = await loop.run_in_executor(
                None, build_verify_context, bundle
            )
            addresses = await _resolve(host, port, resolver)
            host_for_tls = _normalize_host(host) or host
            if _ip_address(host) is not None:
                host_for_tls = str(_ip_address(host))
            last_error: EndpointConnectionError | None = None
            for address in addresses:
                try:
                    return await _inspect_address(
                        host_for_tls,
                        port,
                        address,
                        server_name,
                        verify_context,
                        bundle,
                    )
                except EndpointConnectionResetError:
                    raise
                except EndpointConnectionError as err:
                    last_error = err
            assert last_error is not None
            raise last_error
    except TimeoutError as err:
        raise EndpointTimeoutError(
            f"no answer from {host} port {port} within {timeout_seconds} s"
        ) from err


async def inspect_endpoints(
    endpoints: Iterable[Endpoint],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    resolver: Resolver | None = None,
) -> list[EndpointCertificate | CertificateError]:
    """Inspect several endpoints, at most ``concurrency`` at a time.

    Returns one item per endpoint, in order: the result or the
    `CertificateError` it raised. Unexpected exceptions propagate (as an
    ExceptionGroup) after the other checks are cancelled.
    """
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def check(endpoint: Endpoint) -> EndpointCertificate | CertificateError:
        async with semaphore:
            try:
                return await inspect_endpoint(
                    endpoint.host,
                    endpoint.port,
                    server_name=endpoint.server_name,
                    ca_bundle=endpoint.ca_bundle,
                    timeout_seconds=timeout_seconds,
                    resolver=resolver,
                )
            except CertificateError as err:
                return err

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(check(endpoint)) for endpoint in endpoints]
    return [task.result() for task in tasks]
