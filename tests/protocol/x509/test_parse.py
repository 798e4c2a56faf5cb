"""Tests for protocol/x509/parse.py: PEM and DER certificates and keys in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
import pytest

from custom_components.secure_remote_access.protocol import x509
from tests.fakes import certs
from tests.protocol.common import error_reason


def test_crlf_text_around_and_several_certificates(
    tmp_path: Path, leaf: certs.IssuedCertificate
) -> None:
    """CRLF line ends and text around the blocks do not matter."""
    plain = x509.inspect_pem(leaf.fullchain_pem)
    messy = certs.to_crlf(certs.with_text_around(leaf.fullchain_pem))
    assert b"\r\n" in messy
    assert b"subject=whatever" in messy
    path = certs.write_file(tmp_path / "messy.pem", messy)
    assert x509.read_certificate_file(path) == plain
    assert x509.inspect_pem(messy.decode()) == plain
    assert x509.inspect_certificate_bytes(messy) == plain


@pytest.mark.parametrize(
    ("data", "error", "reason", "message"),
    [
        (b"ENCRYPTED", x509.PrivateKeyEncryptedError, "key_encrypted", "encrypted"),
        (certs.GARBAGE, x509.PrivateKeyFormatError, "invalid_key", "neither"),
        (b"CERT", x509.PrivateKeyFormatError, "invalid_key", "swapped"),
        (b"TWO", x509.PrivateKeyFormatError, "invalid_key", "2 private keys"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            x509.PrivateKeyFormatError,
            "invalid_key",
            "cannot be parsed",
        ),
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            x509.PrivateKeyFormatError,
            "invalid_key",
            "no PEM private key",
        ),
        (
            (
                b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
                b"DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            ),
            x509.PrivateKeyEncryptedError,
            "key_encrypted",
            "encrypted",
        ),
    ],
)
def test_bad_private_keys(
    tmp_path: Path,
    leaf: certs.IssuedCertificate,
    data: bytes,
    error: type[x509.CertificateError],
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
        x509.read_certificate_file(cert_path, key_path)
    assert error_reason(err) == reason
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
    with pytest.raises(x509.PrivateKeyEncryptedError):
        x509.parse_private_key(der)
    with pytest.raises(x509.PrivateKeyFormatError, match="no data"):
        x509.parse_private_key(b"  \n")


def test_malformed_extension_is_a_format_error() -> None:
    """A certificate whose extensions do not parse raises, never crashes."""
    from cryptography import x509 as crypto_x509
    from cryptography.x509.oid import ExtensionOID

    pki = certs.shared_pki()
    certificate = (
        crypto_x509.CertificateBuilder()
        .subject_name(crypto_x509.Name([]))
        .issuer_name(pki.intermediate.certificate.subject)
        .public_key(certs.generate_key().public_key())
        .serial_number(1)
        .not_valid_before(certs.CA_NOT_BEFORE)
        .not_valid_after(certs.CA_NOT_AFTER)
        .add_extension(  # an IP address SAN of one byte
            crypto_x509.UnrecognizedExtension(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x03\x87\x01\x01"
            ),
            critical=False,
        )
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    with pytest.raises(x509.CertificateFormatError, match="malformed") as err:
        x509.inspect_pem(certs.to_pem([certificate]))
    assert err.value.reason == "invalid_format"


def test_self_signed_and_ca() -> None:
    """Self-signed leaves and CA certificates are recognised."""
    info = x509.inspect_pem(certs.self_signed(["example.test"]).cert_pem)
    assert info.self_signed is True
    assert info.issuer == info.subject
    assert info.is_ca is False
    root = x509.inspect_pem(certs.shared_pki().root.cert_pem)
    assert (root.self_signed, root.is_ca) == (True, True)
    inter = x509.inspect_pem(certs.shared_pki().intermediate.cert_pem)
    assert (inter.self_signed, inter.is_ca) == (False, True)


def test_certificate_without_san_or_common_name() -> None:
    """No SAN: empty name tuples; names are never taken from the CN."""
    issued = certs.issue([], common_name="example.test")
    info = x509.inspect_pem(issued.cert_pem)
    assert (info.dns_names, info.ip_addresses) == ((), ())
    assert info.common_name == "example.test"
    assert info.covers("example.test") is False


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
    info = x509.inspect_certificate_bytes(der, key_data=leaf.key_pem)
    assert (info.key_type, info.key_size) == ("unknown", None)
    assert info.key_matches is False
    assert info.dns_names == ("example.test", "www.example.test")
    key = x509.parse_private_key(leaf.key_pem)
    assert x509.key_matches_certificate(key, x509.parse_certificates(der)[0]) is False


def test_leaf_without_common_name_or_basic_constraints() -> None:
    """An IP-only leaf has no CN; a certificate without basicConstraints is no CA."""
    from cryptography import x509 as crypto_x509
    from cryptography.x509.oid import NameOID

    info = x509.inspect_pem(certs.issue(["192.0.2.7"]).cert_pem)
    assert info.common_name is None
    assert info.ip_addresses == ("192.0.2.7",)
    assert info.covers("192.0.2.7")

    key = certs.generate_key()
    name = crypto_x509.Name(
        [crypto_x509.NameAttribute(NameOID.ORGANIZATION_NAME, "No CN")]
    )
    bare = certs.bare_certificate(
        name,
        key=key,
        not_before=certs.CA_NOT_BEFORE,
        not_after=certs.CA_NOT_AFTER,
    )
    info = x509.inspect_pem(certs.to_pem([bare]))
    assert info.is_ca is False
    assert info.self_signed is True
    assert (info.common_name, info.issuer_common_name) == (None, None)


def test_no_certificate_data() -> None:
    """White space or an empty chain is not a certificate."""
    with pytest.raises(x509.CertificateFormatError, match="no data"):
        x509.inspect_certificate_bytes(b" \r\n ")
    with pytest.raises(x509.CertificateFormatError, match="no certificate"):
        x509.build_certificate_info([])


def _rsa_pem(numbers: rsa.RSAPrivateNumbers, encoding: str = "PEM") -> bytes:
    key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    return key.private_bytes(
        getattr(serialization.Encoding, encoding),
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_rsa_key_consistency_checked_quickly() -> None:
    """RSA keys pass an arithmetic check; a damaged one is a format error."""
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = good.private_numbers()
    for encoding in ("PEM", "DER"):
        key = x509.parse_private_key(_rsa_pem(numbers, encoding))
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.private_numbers() == numbers
    damaged = [
        rsa.RSAPrivateNumbers(
            numbers.p,
            numbers.q,
            numbers.d,
            numbers.dmp1 ^ 2,
            numbers.dmq1,
            numbers.iqmp,
            numbers.public_numbers,
        ),
        rsa.RSAPrivateNumbers(
            numbers.p,
            numbers.q,
            numbers.d + 2,
            numbers.dmp1,
            numbers.dmq1,
            numbers.iqmp,
            numbers.public_numbers,
        ),
        rsa.RSAPrivateNumbers(
            numbers.p,
            numbers.q,
            numbers.d,
            numbers.dmp1,
            numbers.dmq1,
            numbers.iqmp + 1,
            numbers.public_numbers,
        ),
    ]
    for bad in damaged:
        for encoding in ("PEM", "DER"):
            with pytest.raises(x509.PrivateKeyFormatError):
                x509.parse_private_key(_rsa_pem(bad, encoding))
