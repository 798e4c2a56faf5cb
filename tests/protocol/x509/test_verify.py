"""Tests for protocol/x509/verify.py and pair.py: chains, pair checks, OpenSSL verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.secure_remote_access.protocol import x509
from custom_components.secure_remote_access.protocol.x509 import VerificationStatus
from tests.fakes import certs
from tests.protocol.common import error_reason


def test_chain_that_does_not_link() -> None:
    """A leaf followed by a foreign or misordered chain is reported."""
    leaf = certs.issue(["example.test"])
    other = certs.other_pki().intermediate.certificate
    info = x509.inspect_pem(leaf.cert_pem + certs.to_pem([other]))
    assert info.chain_valid is False
    assert info.chain_error is not None
    assert "certificate 1 (CN=example.test,O=SRA Tests) is not signed by" in (
        info.chain_error
    )

    pki = certs.shared_pki()
    reordered = leaf.cert_pem + certs.to_pem(
        [pki.root.certificate, pki.intermediate.certificate]
    )
    assert x509.inspect_pem(reordered).chain_valid is False
    full = leaf.fullchain_pem + pki.root.cert_pem
    info = x509.inspect_pem(full)
    assert (info.chain_valid, info.chain_length) == (True, 3)
    assert info.chain[-1].subject == info.chain[-1].issuer


def test_verify_certificate_pair_accepts_a_good_pair(
    leaf: certs.IssuedCertificate,
) -> None:
    """A matching, linked, current pair covering the names passes."""
    info = x509.verify_certificate_pair(
        leaf.fullchain_pem, leaf.key_pem, expected_names=["www.example.test"]
    )
    assert info.key_matches is True
    assert info.fingerprint_sha256 == leaf.fingerprint_sha256


def test_verify_certificate_pair_failures(leaf: certs.IssuedCertificate) -> None:
    """Each failed check raises its own typed error."""
    now = datetime.now(UTC)
    other_chain = leaf.cert_pem + certs.other_pki().intermediate.cert_pem
    cases: list[tuple[bytes, bytes, list[str], type[x509.CertificateError], str]] = [
        (
            leaf.fullchain_pem,
            certs.issue(["x.test"]).with_key(certs.generate_key(slot=3)).key_pem,
            [],
            x509.KeyMismatchError,
            "key_mismatch",
        ),
        (other_chain, leaf.key_pem, [], x509.ChainInvalidError, "chain_invalid"),
        (
            leaf.fullchain_pem,
            leaf.key_pem,
            ["other.test"],
            x509.NamesNotCoveredError,
            "names_not_covered",
        ),
        (
            certs.GARBAGE,
            leaf.key_pem,
            [],
            x509.CertificateFormatError,
            "invalid_format",
        ),
        (leaf.fullchain_pem, b"nope", [], x509.PrivateKeyFormatError, "invalid_key"),
    ]
    expired = certs.issue(["example.test"], expired=True)
    cases.append(
        (
            expired.fullchain_pem,
            expired.key_pem,
            [],
            x509.CertificateExpiredError,
            "expired",
        )
    )
    future = certs.issue(["example.test"], not_yet_valid=True)
    cases.append(
        (
            future.fullchain_pem,
            future.key_pem,
            [],
            x509.CertificateNotYetValidError,
            "not_yet_valid",
        )
    )
    for chain, key, names, error, reason in cases:
        with pytest.raises(error) as err:
            x509.verify_certificate_pair(chain, key, expected_names=names, now=now)
        assert error_reason(err) == reason
        if isinstance(err.value, x509.PairVerificationError):
            assert isinstance(err.value, x509.CertificateError)

    with pytest.raises(x509.NamesNotCoveredError) as missing:
        x509.verify_certificate_pair(
            leaf.fullchain_pem,
            leaf.key_pem,
            expected_names=["example.test", "a.test", "*.example.test"],
        )
    assert missing.value.missing == ("a.test", "*.example.test")


def test_verify_certificate_pair_clock_skew() -> None:
    """``not_before <= now + skew < not_after`` with a small skew."""
    now = datetime(2031, 5, 1, tzinfo=UTC)
    skew = timedelta(minutes=5)
    starts_soon = certs.issue(
        ["example.test"], not_before=now + skew, not_after=now + timedelta(days=9)
    )
    x509.verify_certificate_pair(
        starts_soon.fullchain_pem, starts_soon.key_pem, expected_names=[], now=now
    )
    with pytest.raises(x509.CertificateNotYetValidError):
        x509.verify_certificate_pair(
            starts_soon.fullchain_pem,
            starts_soon.key_pem,
            expected_names=[],
            now=now - timedelta(seconds=1),
        )
    ends_soon = certs.issue(
        ["example.test"], not_before=now - timedelta(days=9), not_after=now + skew
    )
    with pytest.raises(x509.CertificateExpiredError):
        x509.verify_certificate_pair(
            ends_soon.fullchain_pem, ends_soon.key_pem, expected_names=[], now=now
        )
    x509.verify_certificate_pair(
        ends_soon.fullchain_pem,
        ends_soon.key_pem,
        expected_names=[],
        now=now - timedelta(seconds=1),
    )
    with pytest.raises(ValueError, match="aware"):
        x509.verify_certificate_pair(
            ends_soon.fullchain_pem,
            ends_soon.key_pem,
            expected_names=[],
            now=datetime(2031, 1, 1),
        )


def test_verification_status_mapping() -> None:
    """OpenSSL verify codes map to statuses; unknown codes are OTHER."""
    assert x509.verification_status_for(10) is VerificationStatus.EXPIRED
    assert x509.verification_status_for(9) is VerificationStatus.NOT_YET_VALID
    assert x509.verification_status_for(18) is VerificationStatus.SELF_SIGNED
    assert x509.verification_status_for(20) is VerificationStatus.UNKNOWN_ISSUER
    assert x509.verification_status_for(62) is VerificationStatus.NAME_MISMATCH
    assert x509.verification_status_for(64) is VerificationStatus.NAME_MISMATCH
    assert x509.verification_status_for(23) is VerificationStatus.OTHER
