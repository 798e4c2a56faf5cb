"""Tests for protocol/x509/read.py: bounded reads of certificate and key files."""

from __future__ import annotations

import dataclasses
from datetime import UTC
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
import pytest

from custom_components.secure_remote_access.protocol import x509
from tests.fakes import certs
from tests.protocol.common import error_reason


def test_read_fullchain_reports_every_field(
    tmp_path: Path, leaf: certs.IssuedCertificate
) -> None:
    """A PEM full chain gives the leaf's fields and the chain's."""
    cert_path, key_path = leaf.write(tmp_path)
    info = x509.read_certificate_file(cert_path)
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

    assert x509.read_certificate_file(cert_path, key_path).key_matches is True


def test_der_file(tmp_path: Path, leaf: certs.IssuedCertificate) -> None:
    """A DER file holds the leaf only."""
    cert_path, key_path = leaf.write(tmp_path, cert_name="cert.der", der=True)
    info = x509.read_certificate_file(cert_path, key_path)
    assert info.fingerprint_sha256 == leaf.fingerprint_sha256
    assert info.chain_length == 1
    assert info.chain_valid is True
    assert info.key_matches is True
    assert x509.inspect_certificate_bytes(leaf.cert_der) == dataclasses.replace(
        info, key_matches=None
    )


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
        assert x509.read_certificate_file(cert_path, key_path).key_matches is True
    assert b"BEGIN EC PRIVATE KEY" in ec_leaf.key_pem_as("sec1")
    assert b"BEGIN RSA PRIVATE KEY" in rsa_leaf.key_pem_as("pkcs1")


def test_mismatched_key(tmp_path: Path, leaf: certs.IssuedCertificate) -> None:
    """Another key of the same type, or of another type, does not match."""
    for other in (
        certs.generate_key(slot=1),
        certs.generate_key(certs.KeyType.RSA_2048),
    ):
        cert_path, key_path = leaf.with_key(other).write(tmp_path)
        assert x509.read_certificate_file(cert_path, key_path).key_matches is False


@pytest.mark.parametrize(
    ("content", "error", "reason", "message"),
    [
        (b"", x509.CertificateFileEmptyError, "empty", "empty"),
        (b" \r\n\t\n", x509.CertificateFileEmptyError, "empty", "empty"),
        (certs.GARBAGE, x509.CertificateFormatError, "invalid_format", "neither"),
        (b"KEY", x509.CertificateFormatError, "invalid_format", "swapped"),
        (
            b"hello\n-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n",
            x509.CertificateFormatError,
            "invalid_format",
            "not valid base64",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            x509.CertificateFormatError,
            "invalid_format",
            "certificate 1 cannot be parsed",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            x509.CertificateFormatError,
            "invalid_format",
            "no PEM certificate",
        ),
        (b"BIG", x509.CertificateFileTooLargeError, "too_large", "1048576 accepted"),
    ],
)
def test_bad_certificate_files(
    tmp_path: Path,
    leaf: certs.IssuedCertificate,
    content: bytes,
    error: type[x509.CertificateError],
    reason: str,
    message: str,
) -> None:
    """Empty, garbage, swapped, corrupt or oversized files raise typed errors."""
    content = {b"KEY": leaf.key_pem, b"BIG": b"x" * (x509.MAX_FILE_SIZE + 1)}.get(
        content, content
    )
    path = certs.write_file(tmp_path / "fullchain.pem", content)
    with pytest.raises(error, match=message) as err:
        x509.read_certificate_file(path)
    assert error_reason(err) == reason
    assert isinstance(err.value, x509.CertificateError)
    assert err.value.path == str(path)


def test_file_access_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leaf: certs.IssuedCertificate
) -> None:
    """Missing, directory, FIFO and unreadable paths raise typed errors."""
    cases: list[tuple[Path, type[x509.CertificateError], str]] = [
        (tmp_path / "missing.pem", x509.CertificateFileNotFoundError, "not_found"),
        (tmp_path, x509.CertificateIsDirectoryError, "is_directory"),
    ]
    plain = certs.write_file(tmp_path / "plain", b"x")
    cases.append((plain / "below.pem", x509.CertificateFileNotFoundError, "not_found"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases.append((fifo, x509.CertificateNotRegularFileError, "not_regular_file"))
    for path, error, reason in cases:
        with pytest.raises(error) as err:
            x509.read_certificate_file(path)
        assert error_reason(err) == reason, path
        with pytest.raises(error):
            x509.read_private_key_file(path)

    cert_path, key_path = leaf.write(tmp_path)
    real_open = os.open

    def deny(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == str(key_path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(x509.CertificatePermissionError) as err:
        x509.read_certificate_file(cert_path, key_path)
    assert error_reason(err) == "permission_denied"
    assert err.value.path == str(key_path)


def test_read_errors_after_open_are_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leaf: certs.IssuedCertificate
) -> None:
    """An I/O error while reading, or an open error, is a CertificateFileError."""
    cert_path, _ = leaf.write(tmp_path)

    def broken_read(fd: int, size: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "read", broken_read)
    with pytest.raises(x509.CertificateFileError, match="Input/output error") as err:
        x509.read_certificate_file(cert_path)
    assert error_reason(err) == "read_error"
    monkeypatch.undo()

    def broken_open(path: Any, *args: Any, **kwargs: Any) -> int:
        raise OSError(40, "Too many levels of symbolic links")

    monkeypatch.setattr(os, "open", broken_open)
    with pytest.raises(x509.CertificateFileError, match="symbolic links"):
        x509.read_certificate_file(cert_path)


def test_file_growing_beyond_limit(tmp_path: Path) -> None:
    """The size limit also holds while reading (stat may understate)."""
    path = certs.write_file(tmp_path / "big", b"y" * 100)
    with pytest.raises(x509.CertificateFileTooLargeError):
        x509.read_file_limited(path, max_size=10)
    assert x509.read_file_limited(path, max_size=100) == b"y" * 100


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs procfs")
def test_file_reporting_size_zero_is_still_limited() -> None:
    """Files whose stat size understates their content (procfs) are cut at the limit."""
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(
        x509.CertificateFileTooLargeError, match="more than the 16 bytes"
    ):
        x509.read_file_limited("/proc/self/status", max_size=16)
