"""Checks on parsed certificates: key match, signatures, chain, OpenSSL verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)


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
