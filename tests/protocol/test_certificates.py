"""Tests for protocol/certificates.py: files, in-memory PEM, names and endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import dataclasses
from datetime import UTC, datetime, timedelta, timezone
import json
import os
from pathlib import Path
import socket
from typing import Any

from cryptography.hazmat.primitives import hashes
import pytest

from custom_components.secure_remote_access.protocol import certificates as c
from custom_components.secure_remote_access.protocol.certificates import (
    CertificateInfo,
    Endpoint,
    EndpointCertificate,
    VerificationStatus,
)
from tests.fakes import certs
from tests.fakes.tls_server import (
    garbage_server,
    refused_port,
    reset_server,
    stalling_server,
    tls_server,
)

NAMES = ["example.test", "www.example.test", "127.0.0.1", "::1"]


@pytest.fixture(scope="module")
def leaf() -> certs.IssuedCertificate:
    """Return a leaf from the shared private PKI, EC P-256."""
    return certs.issue(NAMES)


@pytest.fixture
def ca_bundle(tmp_path: Path) -> Path:
    """Write the shared root as a CA bundle."""
    return certs.shared_pki().write_bundle(tmp_path / "ca.pem")


def _reason(err: pytest.ExceptionInfo[c.CertificateError]) -> str:
    return err.value.reason


# ------------------------------------------------------------ file inspection


def test_read_fullchain_reports_every_field(
    tmp_path: Path, leaf: certs.IssuedCertificate
) -> None:
    """A PEM full chain gives the leaf's fields and the chain's."""
    cert_path, key_path = leaf.write(tmp_path)
    info = c.read_certificate_file(cert_path)
    pki = certs.shared_pki()

    assert info.subject == "CN=example.test,O=SRA Tests"
    assert info.common_name == "example.test"
    assert info.issuer == "CN=SRA Test Intermediate CA,O=SRA Tests"
    assert info.issuer_common_name == "SRA Test Intermediate CA"
    assert info.serial_number == format(leaf.certificate.serial_number, "x")
    assert info.fingerprint_sha256 == leaf.fingerprint_sha256
    assert len(info.fingerprint_sha256) == 95
    assert info.not_before == leaf.certificate.not_valid_before_utc
    assert info.not_after == leaf.certificate.not_valid_after_utc
    assert info.not_after.tzinfo is UTC
    assert info.dns_names == ("example.test", "www.example.test")
    assert info.ip_addresses == ("127.0.0.1", "::1")
    assert (info.key_type, info.key_size) == ("EC", 256)
    assert info.self_signed is False
    assert info.is_ca is False
    assert info.chain_length == 2
    assert info.chain_valid is True
    assert info.chain_error is None
    assert info.key_matches is None
    (entry,) = info.chain
    assert entry.subject == "CN=SRA Test Intermediate CA,O=SRA Tests"
    assert entry.issuer == "CN=SRA Test Root CA,O=SRA Tests"
    assert entry.not_after == pki.intermediate.certificate.not_valid_after_utc
    assert entry.serial_number == format(
        pki.intermediate.certificate.serial_number, "x"
    )
    digest = pki.intermediate.certificate.fingerprint(hashes.SHA256()).hex()
    assert entry.fingerprint_sha256.replace(":", "").lower() == digest

    assert c.read_certificate_file(cert_path, key_path).key_matches is True


def test_certificate_info_is_frozen_and_serializable(
    leaf: certs.IssuedCertificate,
) -> None:
    """The info is immutable and its dict form is JSON-ready, without secrets."""
    info = c.inspect_pem(leaf.fullchain_pem, key_pem=leaf.key_pem)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.subject = "x"  # type: ignore[misc]
    data = info.as_dict()
    text = json.dumps(data)
    assert "PRIVATE" not in text
    assert data["not_after"] == info.not_after.isoformat()
    assert data["chain_length"] == 2
    assert data["key_matches"] is True
    assert data["chain"][0]["issuer"] == "CN=SRA Test Root CA,O=SRA Tests"


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [
        (certs.KeyType.EC_P256, ("EC", 256)),
        (certs.KeyType.EC_P384, ("EC", 384)),
        (certs.KeyType.RSA_2048, ("RSA", 2048)),
        (certs.KeyType.ED25519, ("Ed25519", 256)),
    ],
)
def test_key_type_and_size(
    tmp_path: Path, key_type: certs.KeyType, expected: tuple[str, int]
) -> None:
    """Key algorithm and size are reported for each key type."""
    issued = certs.issue(["example.test"], key_type=key_type)
    cert_path, key_path = issued.write(tmp_path)
    info = c.read_certificate_file(cert_path, key_path)
    assert (info.key_type, info.key_size) == expected
    assert info.key_matches is True


def test_der_file(tmp_path: Path, leaf: certs.IssuedCertificate) -> None:
    """A DER file holds the leaf only."""
    cert_path, key_path = leaf.write(tmp_path, cert_name="cert.der", der=True)
    info = c.read_certificate_file(cert_path, key_path)
    assert info.fingerprint_sha256 == leaf.fingerprint_sha256
    assert info.chain_length == 1
    assert info.chain_valid is True
    assert info.key_matches is True
    assert c.inspect_certificate_bytes(leaf.cert_der) == dataclasses.replace(
        info, key_matches=None
    )


def test_crlf_text_around_and_several_certificates(
    tmp_path: Path, leaf: certs.IssuedCertificate
) -> None:
    """CRLF line ends and text around the blocks do not matter."""
    plain = c.inspect_pem(leaf.fullchain_pem)
    messy = certs.to_crlf(certs.with_text_around(leaf.fullchain_pem))
    assert b"\r\n" in messy
    assert b"subject=whatever" in messy
    path = certs.write_file(tmp_path / "messy.pem", messy)
    assert c.read_certificate_file(path) == plain
    assert c.inspect_pem(messy.decode()) == plain
    assert c.inspect_certificate_bytes(messy) == plain


def test_private_key_formats(tmp_path: Path) -> None:
    """PKCS#8, SEC1, PKCS#1 and DER keys load; the key must match the leaf."""
    ec_leaf = certs.issue(["example.test"])
    rsa_leaf = certs.issue(["example.test"], key_type=certs.KeyType.RSA_2048)
    for issued, data in [
        (ec_leaf, ec_leaf.key_pem_as("pkcs8")),
        (ec_leaf, ec_leaf.key_pem_as("sec1")),
        (ec_leaf, certs.to_crlf(ec_leaf.key_pem_as("sec1"))),
        (ec_leaf, ec_leaf.key_der),
        (rsa_leaf, rsa_leaf.key_pem_as("pkcs1")),
        (rsa_leaf, rsa_leaf.key_pem_as("pkcs8")),
    ]:
        assert data.startswith((b"-----BEGIN", b"0"))
        key_path = certs.write_file(tmp_path / "key", data, 0o600)
        cert_path = certs.write_file(tmp_path / "cert.pem", issued.fullchain_pem)
        assert c.read_certificate_file(cert_path, key_path).key_matches is True
    assert b"BEGIN EC PRIVATE KEY" in ec_leaf.key_pem_as("sec1")
    assert b"BEGIN RSA PRIVATE KEY" in rsa_leaf.key_pem_as("pkcs1")


def test_mismatched_key(tmp_path: Path, leaf: certs.IssuedCertificate) -> None:
    """Another key of the same type, or of another type, does not match."""
    for other in (
        certs.generate_key(slot=1),
        certs.generate_key(certs.KeyType.RSA_2048),
    ):
        cert_path, key_path = leaf.with_key(other).write(tmp_path)
        assert c.read_certificate_file(cert_path, key_path).key_matches is False


@pytest.mark.parametrize(
    ("data", "error", "reason", "message"),
    [
        (b"ENCRYPTED", c.PrivateKeyEncryptedError, "key_encrypted", "encrypted"),
        (certs.GARBAGE, c.PrivateKeyFormatError, "invalid_key", "neither"),
        (b"CERT", c.PrivateKeyFormatError, "invalid_key", "swapped"),
        (b"TWO", c.PrivateKeyFormatError, "invalid_key", "2 private keys"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            c.PrivateKeyFormatError,
            "invalid_key",
            "cannot be parsed",
        ),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            c.PrivateKeyFormatError,
            "invalid_key",
            "no PEM private key",
        ),
        (
            (
                b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
                b"DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            ),
            c.PrivateKeyEncryptedError,
            "key_encrypted",
            "encrypted",
        ),
    ],
)
def test_bad_private_keys(
    tmp_path: Path,
    leaf: certs.IssuedCertificate,
    data: bytes,
    error: type[c.CertificateError],
    reason: str,
    message: str,
) -> None:
    """Encrypted, garbage, swapped or doubled keys raise typed errors."""
    data = {
        b"ENCRYPTED": leaf.encrypted_key_pem(),
        b"CERT": leaf.fullchain_pem,
        b"TWO": leaf.key_pem + certs.generate_key(slot=1).private_bytes(*_pkcs8_args()),
    }.get(data, data)
    key_path = certs.write_file(tmp_path / "privkey.pem", data, 0o600)
    cert_path = certs.write_file(tmp_path / "fullchain.pem", leaf.fullchain_pem)
    with pytest.raises(error, match=message) as err:
        c.read_certificate_file(cert_path, key_path)
    assert _reason(err) == reason
    assert err.value.path == str(key_path)
    assert str(key_path) in str(err.value)


def _pkcs8_args() -> tuple[Any, Any, Any]:
    from cryptography.hazmat.primitives import serialization

    return (
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_encrypted_der_key() -> None:
    """An encrypted DER key is reported as encrypted."""
    from cryptography.hazmat.primitives import serialization

    der = certs.generate_key().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(c.PrivateKeyEncryptedError):
        c.parse_private_key(der)
    with pytest.raises(c.PrivateKeyFormatError, match="no data"):
        c.parse_private_key(b"  \n")


@pytest.mark.parametrize(
    ("content", "error", "reason", "message"),
    [
        (b"", c.CertificateFileEmptyError, "empty", "empty"),
        (b" \r\n\t\n", c.CertificateFileEmptyError, "empty", "empty"),
        (certs.GARBAGE, c.CertificateFormatError, "invalid_format", "neither"),
        (b"KEY", c.CertificateFormatError, "invalid_format", "swapped"),
        (
            b"hello\n-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n",
            c.CertificateFormatError,
            "invalid_format",
            "not valid base64",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            c.CertificateFormatError,
            "invalid_format",
            "certificate 1 cannot be parsed",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            c.CertificateFormatError,
            "invalid_format",
            "no PEM certificate",
        ),
        (b"BIG", c.CertificateFileTooLargeError, "too_large", "1048576 accepted"),
    ],
)
def test_bad_certificate_files(
    tmp_path: Path,
    leaf: certs.IssuedCertificate,
    content: bytes,
    error: type[c.CertificateError],
    reason: str,
    message: str,
) -> None:
    """Empty, garbage, swapped, corrupt or oversized files raise typed errors."""
    content = {b"KEY": leaf.key_pem, b"BIG": b"x" * (c.MAX_FILE_SIZE + 1)}.get(
        content, content
    )
    path = certs.write_file(tmp_path / "fullchain.pem", content)
    with pytest.raises(error, match=message) as err:
        c.read_certificate_file(path)
    assert _reason(err) == reason
    assert isinstance(err.value, c.CertificateError)
    assert err.value.path == str(path)


def test_file_access_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leaf: certs.IssuedCertificate
) -> None:
    """Missing, directory, FIFO and unreadable paths raise typed errors."""
    cases: list[tuple[Path, type[c.CertificateError], str]] = [
        (tmp_path / "missing.pem", c.CertificateFileNotFoundError, "not_found"),
        (tmp_path, c.CertificateIsDirectoryError, "is_directory"),
    ]
    plain = certs.write_file(tmp_path / "plain", b"x")
    cases.append((plain / "below.pem", c.CertificateFileNotFoundError, "not_found"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases.append((fifo, c.CertificateNotRegularFileError, "not_regular_file"))
    for path, error, reason in cases:
        with pytest.raises(error) as err:
            c.read_certificate_file(path)
        assert _reason(err) == reason, path
        with pytest.raises(error):
            c.read_private_key_file(path)

    cert_path, key_path = leaf.write(tmp_path)
    real_open = os.open

    def deny(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == str(key_path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(c.CertificatePermissionError) as err:
        c.read_certificate_file(cert_path, key_path)
    assert _reason(err) == "permission_denied"
    assert err.value.path == str(key_path)


def test_read_errors_after_open_are_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leaf: certs.IssuedCertificate
) -> None:
    """An I/O error while reading, or an open error, is a CertificateFileError."""
    cert_path, _ = leaf.write(tmp_path)

    def broken_read(fd: int, size: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "read", broken_read)
    with pytest.raises(c.CertificateFileError, match="Input/output error") as err:
        c.read_certificate_file(cert_path)
    assert _reason(err) == "read_error"
    monkeypatch.undo()

    def broken_open(path: Any, *args: Any, **kwargs: Any) -> int:
        raise OSError(40, "Too many levels of symbolic links")

    monkeypatch.setattr(os, "open", broken_open)
    with pytest.raises(c.CertificateFileError, match="symbolic links"):
        c.read_certificate_file(cert_path)


def test_file_growing_beyond_limit(tmp_path: Path) -> None:
    """The size limit also holds while reading (stat may understate)."""
    path = certs.write_file(tmp_path / "big", b"y" * 100)
    with pytest.raises(c.CertificateFileTooLargeError):
        c.read_file_limited(path, max_size=10)
    assert c.read_file_limited(path, max_size=100) == b"y" * 100


def test_chain_that_does_not_link() -> None:
    """A leaf followed by a foreign or misordered chain is reported."""
    leaf = certs.issue(["example.test"])
    other = certs.other_pki().intermediate.certificate
    info = c.inspect_pem(leaf.cert_pem + certs.to_pem([other]))
    assert info.chain_valid is False
    assert info.chain_error is not None
    assert "certificate 1 (CN=example.test,O=SRA Tests) is not signed by" in (
        info.chain_error
    )

    pki = certs.shared_pki()
    reordered = leaf.cert_pem + certs.to_pem(
        [pki.root.certificate, pki.intermediate.certificate]
    )
    assert c.inspect_pem(reordered).chain_valid is False
    full = leaf.fullchain_pem + pki.root.cert_pem
    info = c.inspect_pem(full)
    assert (info.chain_valid, info.chain_length) == (True, 3)
    assert info.chain[-1].subject == info.chain[-1].issuer


def test_malformed_extension_is_a_format_error() -> None:
    """A certificate whose extensions do not parse raises, never crashes."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    pki = certs.shared_pki()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(pki.intermediate.certificate.subject)
        .public_key(certs.generate_key().public_key())
        .serial_number(1)
        .not_valid_before(certs.CA_NOT_BEFORE)
        .not_valid_after(certs.CA_NOT_AFTER)
        .add_extension(  # an IP address SAN of one byte
            x509.UnrecognizedExtension(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x03\x87\x01\x01"
            ),
            critical=False,
        )
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    with pytest.raises(c.CertificateFormatError, match="malformed") as err:
        c.inspect_pem(certs.to_pem([certificate]))
    assert err.value.reason == "invalid_format"


def test_self_signed_and_ca() -> None:
    """Self-signed leaves and CA certificates are recognised."""
    info = c.inspect_pem(certs.self_signed(["example.test"]).cert_pem)
    assert info.self_signed is True
    assert info.issuer == info.subject
    assert info.is_ca is False
    root = c.inspect_pem(certs.shared_pki().root.cert_pem)
    assert (root.self_signed, root.is_ca) == (True, True)
    inter = c.inspect_pem(certs.shared_pki().intermediate.cert_pem)
    assert (inter.self_signed, inter.is_ca) == (False, True)


def test_certificate_without_san_or_common_name() -> None:
    """No SAN: empty name tuples; names are never taken from the CN."""
    issued = certs.issue([], common_name="example.test")
    info = c.inspect_pem(issued.cert_pem)
    assert (info.dns_names, info.ip_addresses) == ((), ())
    assert info.common_name == "example.test"
    assert info.covers("example.test") is False


def test_dates_and_helpers() -> None:
    """days_remaining / is_expired / is_not_yet_valid follow the given now."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    issued = certs.issue(
        ["example.test"], not_before=start, not_after=start + timedelta(days=90)
    )
    info = c.inspect_pem(issued.cert_pem)
    assert info.not_before == start
    before = start - timedelta(seconds=1)
    assert info.is_not_yet_valid(before) is True
    assert info.is_valid_at(before) is False
    assert info.is_not_yet_valid(start) is False
    assert info.days_remaining(start) == 90
    assert info.days_remaining(start + timedelta(days=60, hours=12)) == 29
    end = info.not_after
    assert info.is_expired(end) is False
    assert info.is_valid_at(end) is True
    assert info.is_expired(end + timedelta(seconds=1)) is True
    assert info.days_remaining(end + timedelta(seconds=1)) == -1
    assert info.remaining(end - timedelta(hours=1)) == timedelta(hours=1)
    same_instant_elsewhere = start.astimezone(timezone(timedelta(hours=2)))
    assert info.days_remaining(same_instant_elsewhere) == 90
    with pytest.raises(ValueError, match="aware"):
        info.days_remaining(datetime(2030, 1, 1))

    expired = c.inspect_pem(certs.issue(["a.test"], expired=True).cert_pem)
    now = datetime.now(UTC)
    assert expired.is_expired(now) is True
    assert expired.days_remaining(now) < 0
    future = c.inspect_pem(certs.issue(["a.test"], not_yet_valid=True).cert_pem)
    assert future.is_not_yet_valid(now) is True
    assert future.is_expired(now) is False


# ---------------------------------------------------------------- name rules


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.test", "example.test", True),
        ("EXAMPLE.test", "example.TEST", True),
        ("example.test.", "example.test", True),
        ("example.test", "example.test.", True),
        ("example.test", "www.example.test", False),
        ("*.example.test", "www.example.test", True),
        ("*.example.test", "WWW.Example.Test", True),
        ("*.example.test", "example.test", False),
        ("*.example.test", "a.b.example.test", False),
        ("*.example.test", ".example.test", False),
        ("*.test", "example.test", False),
        ("*.com", "example.com", False),
        ("*", "localhost", False),
        ("w*.example.test", "www.example.test", False),
        ("*w.example.test", "www.example.test", False),
        ("www.*.test", "www.example.test", False),
        ("*.*.example.test", "a.b.example.test", False),
        ("*.example.test", "*.example.test", False),
        ("xn--bcher-kva.example", "bücher.example", True),
        ("bücher.example", "xn--bcher-kva.example", True),
        ("*.xn--bcher-kva.example", "www.bücher.example", True),
        ("*.bücher.example", "www.xn--bcher-kva.example", True),
        ("127.0.0.1", "127.0.0.1", False),
        ("example..test", "example..test", False),
        ("", "example.test", False),
        ("example.test", "", False),
    ],
)
def test_hostname_matches(pattern: str, host: str, expected: bool) -> None:
    """RFC 6125 matching rules for DNS-name SANs."""
    assert c.hostname_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("dns_names", "ip_addresses", "host", "expected"),
    [
        ([], ["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], [], "127.0.0.1", False),
        ([], ["::1"], "0:0::1", True),
        ([], ["::1"], "[::1]", True),
        ([], ["127.0.0.1"], "127.0.0.2", False),
        (["*.example.test"], ["127.0.0.1"], "api.example.test", True),
        (["*.example.test"], [], "example.test", False),
    ],
)
def test_names_cover_host(
    dns_names: Sequence[str], ip_addresses: Sequence[str], host: str, expected: bool
) -> None:
    """IP hosts match only IP SANs, names only DNS SANs."""
    assert c.names_cover_host(dns_names, ip_addresses, host) is expected


def test_missing_names_with_wildcards() -> None:
    """Expected ``*.`` names need an identical SAN; others follow matching rules."""
    info = c.inspect_pem(certs.issue(["example.test", "*.Example.test"]).cert_pem)
    assert (
        info.missing_names(["example.test", "*.example.test", "a.example.test"]) == []
    )
    assert info.missing_names(["*.other.test", "a.b.example.test", "*"]) == [
        "*.other.test",
        "a.b.example.test",
        "*",
    ]
    assert info.covers("WWW.EXAMPLE.TEST")


# ------------------------------------------------------------ pair verification


def test_verify_certificate_pair_accepts_a_good_pair(
    leaf: certs.IssuedCertificate,
) -> None:
    """A matching, linked, current pair covering the names passes."""
    info = c.verify_certificate_pair(
        leaf.fullchain_pem, leaf.key_pem, expected_names=["www.example.test"]
    )
    assert info.key_matches is True
    assert info.fingerprint_sha256 == leaf.fingerprint_sha256


def test_verify_certificate_pair_failures(leaf: certs.IssuedCertificate) -> None:
    """Each failed check raises its own typed error."""
    now = datetime.now(UTC)
    other_chain = leaf.cert_pem + certs.other_pki().intermediate.cert_pem
    cases: list[tuple[bytes, bytes, list[str], type[c.CertificateError], str]] = [
        (
            leaf.fullchain_pem,
            certs.issue(["x.test"]).with_key(certs.generate_key(slot=3)).key_pem,
            [],
            c.KeyMismatchError,
            "key_mismatch",
        ),
        (other_chain, leaf.key_pem, [], c.ChainInvalidError, "chain_invalid"),
        (
            leaf.fullchain_pem,
            leaf.key_pem,
            ["other.test"],
            c.NamesNotCoveredError,
            "names_not_covered",
        ),
        (certs.GARBAGE, leaf.key_pem, [], c.CertificateFormatError, "invalid_format"),
        (leaf.fullchain_pem, b"nope", [], c.PrivateKeyFormatError, "invalid_key"),
    ]
    expired = certs.issue(["example.test"], expired=True)
    cases.append(
        (
            expired.fullchain_pem,
            expired.key_pem,
            [],
            c.CertificateExpiredError,
            "expired",
        )
    )
    future = certs.issue(["example.test"], not_yet_valid=True)
    cases.append(
        (
            future.fullchain_pem,
            future.key_pem,
            [],
            c.CertificateNotYetValidError,
            "not_yet_valid",
        )
    )
    for chain, key, names, error, reason in cases:
        with pytest.raises(error) as err:
            c.verify_certificate_pair(chain, key, expected_names=names, now=now)
        assert _reason(err) == reason
        if isinstance(err.value, c.PairVerificationError):
            assert isinstance(err.value, c.CertificateError)

    with pytest.raises(c.NamesNotCoveredError) as missing:
        c.verify_certificate_pair(
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
    c.verify_certificate_pair(
        starts_soon.fullchain_pem, starts_soon.key_pem, expected_names=[], now=now
    )
    with pytest.raises(c.CertificateNotYetValidError):
        c.verify_certificate_pair(
            starts_soon.fullchain_pem,
            starts_soon.key_pem,
            expected_names=[],
            now=now - timedelta(seconds=1),
        )
    ends_soon = certs.issue(
        ["example.test"], not_before=now - timedelta(days=9), not_after=now + skew
    )
    with pytest.raises(c.CertificateExpiredError):
        c.verify_certificate_pair(
            ends_soon.fullchain_pem, ends_soon.key_pem, expected_names=[], now=now
        )
    c.verify_certificate_pair(
        ends_soon.fullchain_pem,
        ends_soon.key_pem,
        expected_names=[],
        now=now - timedelta(seconds=1),
    )
    with pytest.raises(ValueError, match="aware"):
        c.verify_certificate_pair(
            ends_soon.fullchain_pem,
            ends_soon.key_pem,
            expected_names=[],
            now=datetime(2031, 1, 1),
        )


def test_verification_status_mapping() -> None:
    """OpenSSL verify codes map to statuses; unknown codes are OTHER."""
    assert c.verification_status_for(10) is VerificationStatus.EXPIRED
    assert c.verification_status_for(9) is VerificationStatus.NOT_YET_VALID
    assert c.verification_status_for(18) is VerificationStatus.SELF_SIGNED
    assert c.verification_status_for(20) is VerificationStatus.UNKNOWN_ISSUER
    assert c.verification_status_for(62) is VerificationStatus.NAME_MISMATCH
    assert c.verification_status_for(64) is VerificationStatus.NAME_MISMATCH
    assert c.verification_status_for(23) is VerificationStatus.OTHER


# ------------------------------------------------------------------ endpoints


async def test_endpoint_valid_with_private_ca(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """A chain from the private CA verifies against its bundle in one handshake."""
    async with tls_server(leaf) as server:
        result = await c.inspect_endpoint(
            "127.0.0.1",
            server.port,
            server_name="www.example.test",
            ca_bundle=ca_bundle,
        )
    assert isinstance(result, EndpointCertificate)
    assert result.verification is VerificationStatus.VALID
    assert result.verified is True
    assert result.verification_message is None
    assert result.verification_code is None
    assert (result.host, result.port, result.address) == (
        "127.0.0.1",
        server.port,
        "127.0.0.1",
    )
    assert result.server_name == "www.example.test"
    assert result.ca_bundle == str(ca_bundle)
    assert result.tls_version == "TLSv1.3"
    assert result.cipher
    assert result.certificate == c.inspect_pem(leaf.fullchain_pem)
    assert server.connections == 1
    assert server.server_names == ["www.example.test"]
    json.dumps(result.as_dict())


async def test_endpoint_ip_address_without_server_name(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """An IP host sends no SNI and is verified against the IP SANs."""
    async with tls_server(leaf) as server:
        result = await c.inspect_endpoint(
            "127.0.0.1", server.port, ca_bundle=str(ca_bundle)
        )
    assert result.verification is VerificationStatus.VALID
    assert server.server_names == [None]


@pytest.mark.parametrize(
    ("make", "server_name", "bundle", "status", "code"),
    [
        (lambda: certs.issue(NAMES), "example.test", False, "unknown_issuer", 20),
        (lambda: certs.self_signed(NAMES), "example.test", False, "self_signed", 18),
        (
            lambda: certs.issue(NAMES, expired=True),
            "example.test",
            True,
            "expired",
            10,
        ),
        (
            lambda: certs.issue(NAMES, not_yet_valid=True),
            "example.test",
            True,
            "not_yet_valid",
            9,
        ),
        (
            lambda: certs.issue(["other.test"]),
            "example.test",
            True,
            "name_mismatch",
            62,
        ),
        (
            lambda: certs.issue(["*.example.test"]),
            "example.test",
            True,
            "name_mismatch",
            62,
        ),
        (
            lambda: certs.issue(["*.example.test"]),
            "api.example.test",
            True,
            "valid",
            None,
        ),
        (
            lambda: certs.issue(NAMES, key_type=certs.KeyType.RSA_2048),
            "example.test",
            True,
            "valid",
            None,
        ),
    ],
)
async def test_endpoint_verification_outcomes(
    socket_enabled: None,
    tmp_path: Path,
    make: Any,
    server_name: str,
    bundle: bool,
    status: str,
    code: int | None,
) -> None:
    """The certificate is fetched even when verification fails, with the reason."""
    issued: certs.IssuedCertificate = make()
    ca_bundle = certs.shared_pki().write_bundle(tmp_path / "ca.pem") if bundle else None
    async with tls_server(issued) as server:
        result = await c.inspect_endpoint(
            "127.0.0.1", server.port, server_name=server_name, ca_bundle=ca_bundle
        )
    assert result.verification == status
    assert result.verification_code == code
    assert result.certificate.fingerprint_sha256 == issued.fingerprint_sha256
    assert result.certificate.chain_length == 1 + len(issued.intermediates)
    if code is None:
        assert server.connections == 1
    else:
        assert result.verification_message
        assert result.verified is False
        assert server.connections == 2


async def test_endpoint_sni_selects_certificate(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """The server name picks the certificate; the default serves the rest."""
    other = certs.issue(["other.test"], key_type=certs.KeyType.EC_P384)
    async with tls_server(leaf, sni={"other.test": other}) as server:
        first = await c.inspect_endpoint(
            "127.0.0.1", server.port, server_name="other.test", ca_bundle=ca_bundle
        )
        second = await c.inspect_endpoint(
            "127.0.0.1", server.port, server_name="example.test", ca_bundle=ca_bundle
        )
    assert first.certificate.fingerprint_sha256 == other.fingerprint_sha256
    assert first.certificate.key_size == 384
    assert first.verified
    assert second.certificate.fingerprint_sha256 == leaf.fingerprint_sha256
    assert second.verified
    assert server.server_names == ["other.test", "example.test"]


async def test_endpoint_host_name_with_injected_resolver(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """A host name is resolved by the resolver and used as SNI, IDNA-encoded."""
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    async with tls_server(leaf) as server:
        result = await c.inspect_endpoint(
            "WWW.Example.Test.", server.port, ca_bundle=ca_bundle, resolver=resolver
        )
    assert result.verified
    assert result.host == "www.example.test"
    assert asked == [("www.example.test", server.port)]
    assert server.server_names == ["www.example.test"]


async def test_endpoint_connection_refused(socket_enabled: None) -> None:
    """Nothing listening: refused, for every resolved address."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "127.0.0.1"]

    with refused_port() as port:
        with pytest.raises(c.EndpointConnectionRefusedError) as err:
            await c.inspect_endpoint("127.0.0.1", port)
        assert _reason(err) == "connection_refused"
        assert isinstance(err.value, c.EndpointConnectionError)
        with pytest.raises(c.EndpointConnectionRefusedError):
            await c.inspect_endpoint("refused.test", port, resolver=resolver)


@pytest.mark.parametrize("graceful", [False, True])
async def test_endpoint_connection_reset(socket_enabled: None, graceful: bool) -> None:
    """A server that drops the connection during the handshake."""
    async with reset_server(graceful=graceful) as server:
        with pytest.raises(c.EndpointConnectionResetError) as err:
            await c.inspect_endpoint("127.0.0.1", server.port)
    assert _reason(err) == "connection_reset"
    assert server.connections == 1
    assert server.received.startswith(b"\x16\x03")  # a TLS ClientHello


async def test_endpoint_timeout(socket_enabled: None) -> None:
    """A handshake that never completes hits the timeout."""
    loop = asyncio.get_running_loop()
    async with stalling_server() as server:
        start = loop.time()
        with pytest.raises(c.EndpointTimeoutError) as err:
            await c.inspect_endpoint("127.0.0.1", server.port, timeout_seconds=0.3)
        elapsed = loop.time() - start
    assert _reason(err) == "timeout"
    assert 0.25 < elapsed < 3


async def test_endpoint_plain_tcp_is_a_handshake_failure(socket_enabled: None) -> None:
    """Non-TLS bytes from the server fail the handshake."""
    async with garbage_server() as server:
        with pytest.raises(c.EndpointHandshakeError) as err:
            await c.inspect_endpoint("127.0.0.1", server.port)
    assert _reason(err) == "handshake_failed"
    assert "TLS handshake failed" in str(err.value)


async def test_endpoint_name_resolution_failures() -> None:
    """Unresolvable or invalid names fail without touching the network."""

    async def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def empty(host: str, port: int) -> list[str]:
        return []

    cases: list[tuple[str, Any, str]] = [
        ("nowhere.test", failing, "Name or service not known"),
        ("nowhere.test", empty, "no address"),
        ("host.invalid", None, "invalid"),
        ("bad host!", None, "invalid host name"),
        ("*.example.test", None, "invalid host name"),
        ("", None, "invalid host name"),
    ]
    for host, resolver, message in cases:
        with pytest.raises(c.EndpointNameResolutionError, match=message) as err:
            await c.inspect_endpoint(host, 443, resolver=resolver)
        assert _reason(err) == "name_resolution_failed"


async def test_endpoint_bad_ca_bundle(tmp_path: Path) -> None:
    """A missing or garbage CA bundle raises a file or format error."""
    with pytest.raises(c.CertificateFileNotFoundError) as err:
        await c.inspect_endpoint("127.0.0.1", 443, ca_bundle=tmp_path / "nope.pem")
    assert _reason(err) == "not_found"
    garbage = certs.write_file(tmp_path / "garbage.pem", certs.GARBAGE)
    with pytest.raises(c.CertificateFormatError) as err2:
        await c.inspect_endpoint("127.0.0.1", 443, ca_bundle=garbage)
    assert err2.value.path == str(garbage)


async def test_endpoint_der_ca_bundle(
    socket_enabled: None, tmp_path: Path, leaf: certs.IssuedCertificate
) -> None:
    """A DER trust anchor works too."""
    from cryptography.hazmat.primitives import serialization

    root = certs.shared_pki().root.certificate
    bundle = certs.write_file(
        tmp_path / "ca.der", root.public_bytes(serialization.Encoding.DER)
    )
    async with tls_server(leaf) as server:
        result = await c.inspect_endpoint(
            "127.0.0.1", server.port, server_name="example.test", ca_bundle=bundle
        )
    assert result.verified


async def test_endpoint_without_certificate(
    socket_enabled: None, leaf: certs.IssuedCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handshake without a peer certificate is its own error."""
    monkeypatch.setattr(c, "_peer_chain", lambda ssl_object: [])
    async with tls_server(leaf) as server:
        with pytest.raises(c.EndpointNoCertificateError) as err:
            await c.inspect_endpoint("127.0.0.1", server.port)
    assert _reason(err) == "no_certificate"


async def test_inspect_endpoints_concurrently(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """Results come back in order, errors as values, bounded concurrency."""
    running = 0
    peak = 0

    async def resolver(host: str, port: int) -> list[str]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return ["127.0.0.1"]

    with refused_port() as closed:
        async with tls_server(leaf) as good, garbage_server() as bad:
            endpoints = [
                Endpoint(f"host{i}.test", good.port, "example.test", str(ca_bundle))
                for i in range(6)
            ]
            endpoints += [
                Endpoint("refused.test", closed),
                Endpoint("garbage.test", bad.port),
                Endpoint("www.example.test", good.port),
            ]
            results = await c.inspect_endpoints(
                endpoints, concurrency=3, resolver=resolver
            )
    assert peak <= 3
    assert len(results) == 9
    for result in results[:6]:
        assert isinstance(result, EndpointCertificate)
        assert result.verified
    assert isinstance(results[6], c.EndpointConnectionRefusedError)
    assert isinstance(results[7], c.EndpointHandshakeError)
    last = results[8]
    assert isinstance(last, EndpointCertificate)
    assert last.verification is VerificationStatus.UNKNOWN_ISSUER
    assert isinstance(last.certificate, CertificateInfo)


# ------------------------------------------------------- less common inputs


def test_key_type_and_size_of_rarer_algorithms() -> None:
    """Ed448 and DSA are named with their sizes; other key kinds by their class name."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ed448, x25519

    assert c.key_type_and_size(ed448.Ed448PrivateKey.generate()) == ("Ed448", 456)
    dsa_key = dsa.generate_private_key(1024)  # noqa: S505 - fast, size only reported
    assert c.key_type_and_size(dsa_key.public_key()) == ("DSA", 1024)
    kind, size = c.key_type_and_size(x25519.X25519PrivateKey.generate().public_key())
    assert kind.startswith("X25519")
    assert size is None


def _with_unknown_key_algorithm(issued: certs.IssuedCertificate) -> bytes:
    """The DER of ``issued`` with its id-ecPublicKey OID turned into an unknown one."""
    from cryptography.hazmat.primitives import serialization

    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    ec_public_key = bytes.fromhex("06072A8648CE3D0201")  # 1.2.840.10045.2.1
    assert der.count(ec_public_key) == 1
    return der.replace(ec_public_key, bytes.fromhex("06072A8648CE3D0209"))


def test_certificate_with_unknown_key_algorithm(leaf: certs.IssuedCertificate) -> None:
    """A key algorithm cryptography does not know is reported, and never matches a key."""
    der = _with_unknown_key_algorithm(leaf)
    info = c.inspect_certificate_bytes(der, key_data=leaf.key_pem)
    assert (info.key_type, info.key_size) == ("unknown", None)
    assert info.key_matches is False
    assert info.dns_names == ("example.test", "www.example.test")
    key = c.parse_private_key(leaf.key_pem)
    assert c.key_matches_certificate(key, c.parse_certificates(der)[0]) is False


def test_leaf_without_common_name_or_basic_constraints() -> None:
    """An IP-only leaf has no CN; a certificate without basicConstraints is no CA."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    info = c.inspect_pem(certs.issue(["192.0.2.7"]).cert_pem)
    assert info.common_name is None
    assert info.ip_addresses == ("192.0.2.7",)
    assert info.covers("192.0.2.7")

    key = certs.generate_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "No CN")])
    bare = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(certs.CA_NOT_BEFORE)
        .not_valid_after(certs.CA_NOT_AFTER)
        .sign(key, hashes.SHA256())
    )
    info = c.inspect_pem(certs.to_pem([bare]))
    assert info.is_ca is False
    assert info.self_signed is True
    assert (info.common_name, info.issuer_common_name) == (None, None)


def test_no_certificate_data() -> None:
    """White space or an empty chain is not a certificate."""
    with pytest.raises(c.CertificateFormatError, match="no data"):
        c.inspect_certificate_bytes(b" \r\n ")
    with pytest.raises(c.CertificateFormatError, match="no certificate"):
        c.build_certificate_info([])


def test_names_that_cannot_be_idna_encoded_never_match() -> None:
    """A label too long for IDNA matches nothing; a valid IDN matches its A-label."""
    too_long = "\u00fc" * 70 + ".example"
    assert c.hostname_matches(too_long, too_long) is False
    assert c.names_cover_host([too_long], [], too_long) is False
    assert c.hostname_matches("xn--bcher-kva.example", "B\u00fccher.example") is True


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs procfs")
def test_file_reporting_size_zero_is_still_limited() -> None:
    """Files whose stat size understates their content (procfs) are cut at the limit."""
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(c.CertificateFileTooLargeError, match="more than the 16 bytes"):
        c.read_file_limited("/proc/self/status", max_size=16)


async def test_endpoint_resolved_by_the_system_resolver(
    socket_enabled: None, leaf: certs.IssuedCertificate, ca_bundle: Path
) -> None:
    """Without an injected resolver, ``localhost`` is resolved by the system."""
    async with tls_server(leaf) as server:
        result = await c.inspect_endpoint(
            "localhost", server.port, server_name="example.test", ca_bundle=ca_bundle
        )
    assert result.verified
    assert result.host == "localhost"
    assert result.address in ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("alert", "error", "message"),
    [
        (b"\x01\x00", c.EndpointConnectionResetError, "closed during the TLS"),
        (b"\x02\x28", c.EndpointHandshakeError, "HANDSHAKE_FAILURE"),
    ],
)
async def test_endpoint_answering_with_a_tls_alert(
    socket_enabled: None, alert: bytes, error: type[c.EndpointError], message: str
) -> None:
    """A close_notify in answer to the ClientHello is a reset; a fatal alert a failed handshake."""
    async with garbage_server(b"\x15\x03\x03\x00\x02" + alert) as server:
        with pytest.raises(error, match=message):
            await c.inspect_endpoint("127.0.0.1", server.port)
