"""Verifying a certificate + key pair in memory before it is installed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from .errors import (
    CertificateExpiredError,
    CertificateNotYetValidError,
    ChainInvalidError,
    KeyMismatchError,
    NamesNotCoveredError,
)
from .model import CertificateInfo, require_aware
from .parse import inspect_pem

DEFAULT_CLOCK_SKEW: Final = timedelta(minutes=5)


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
    now = require_aware(now or datetime.now(UTC))
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
