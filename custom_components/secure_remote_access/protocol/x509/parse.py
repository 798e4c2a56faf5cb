"""Parsing PEM and DER certificates and keys in memory, and describing them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
import hashlib
import re
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import ExtensionOID, NameOID

from .errors import (
    CertificateFormatError,
    PrivateKeyEncryptedError,
    PrivateKeyFormatError,
)
from .model import CertificateInfo, ChainEntry, key_type_and_size
from .verify import chain_problem, is_signed_by, key_matches_certificate

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL
)
_CERTIFICATE_LABELS: Final = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE"})
_PRIVATE_KEY_LABELS: Final = frozenset(
    {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"DSA PRIVATE KEY"}
)


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
            return _checked(
                serialization.load_der_private_key(
                    raw, password=None, unsafe_skip_rsa_key_validation=True
                )
            )
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
        return _checked(
            serialization.load_pem_private_key(
                pem, password=None, unsafe_skip_rsa_key_validation=True
            )
        )
    except TypeError as err:
        raise PrivateKeyEncryptedError("private key is encrypted") from err
    except (ValueError, UnsupportedAlgorithm) as err:
        raise PrivateKeyFormatError(f"private key cannot be parsed: {err}") from err


def _checked(key: PrivateKeyTypes) -> PrivateKeyTypes:
    """``key``, after an arithmetic consistency check when it is RSA.

    OpenSSL's own RSA check also tests that both factors are prime: 0.3 s of
    CPU for a 4096-bit key, with the interpreter lock held, which stalls the
    event loop even from an executor thread. These identities (microseconds)
    catch a damaged or mismatched key; only a deliberately built non-prime
    factor passes them.
    """
    if not isinstance(key, rsa.RSAPrivateKey):
        return key
    numbers = key.private_numbers()
    p, q, d = numbers.p, numbers.q, numbers.d
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    if not (
        1 < p < n
        and 1 < q < n
        and p * q == n
        and e > 1
        and (e * d) % (p - 1) == 1
        and (e * d) % (q - 1) == 1
        and numbers.dmp1 == d % (p - 1)
        and numbers.dmq1 == d % (q - 1)
        and (numbers.iqmp * q) % p == 1
    ):
        raise ValueError("RSA private key is inconsistent")
    return key


def common_name(name: x509.Name) -> str | None:
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


def subject_alt_names(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
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


def certificate_names(certificate: x509.Certificate) -> list[str]:
    """The DNS names in a certificate's SAN extension."""
    return subject_alt_names(certificate)[0]


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
        dns_names, ip_addresses = subject_alt_names(leaf)
        return CertificateInfo(
            subject=leaf.subject.rfc4514_string(),
            common_name=common_name(leaf.subject),
            issuer=leaf.issuer.rfc4514_string(),
            issuer_common_name=common_name(leaf.issuer),
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
    return _inspect(parse_certificates(data), key_data)


def inspect_pem(
    pem: bytes | str, *, key_pem: bytes | str | None = None
) -> CertificateInfo:
    """Inspect PEM certificates (leaf first) in memory (and an optional key)."""
    return _inspect(parse_pem_certificates(pem), key_pem)


def _inspect(
    certificates: list[x509.Certificate], key_data: bytes | str | None
) -> CertificateInfo:
    key = parse_private_key(key_data) if key_data is not None else None
    return build_certificate_info(certificates, key)
