"""Unit tests of certificate keys, CSRs, dns-01 values and ARI identifiers."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
import pytest

from custom_components.secure_remote_access.protocol.acme.crypto import (
    KeyType,
    ari_cert_id,
    build_csr,
    dns01_txt_value,
    generate_key_and_csr,
    generate_private_key,
    serial_der_bytes,
    top_issuer_common_name,
)
from custom_components.secure_remote_access.protocol.names import challenge_record_name
from custom_components.secure_remote_access.protocol.x509 import certificate_names
from tests.fakes import certs

# RFC 9773 Appendix A: the example certificate and its identifier.
RFC9773_CERT = """-----BEGIN CERTIFICATE-----
MIIBQzCB66ADAgECAgUAh2VDITAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpFeGFt
cGxlIENBMCIYDzAwMDEwMTAxMDAwMDAwWhgPMDAwMTAxMDEwMDAwMDBaMBYxFDAS
BgNVBAMTC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBZu
7cbpAYNXZLbbh8rNIzuOoqOOtmxA1v7cRm//AwyMwWxyHz4zfwmBhcSrf47NUAFf
qzLQ2PPQxdTXREYEnKMjMCEwHwYDVR0jBBgwFoAUaYhba4dGQEHhs3uEe6CuLN4B
yNQwCgYIKoZIzj0EAwIDRwAwRAIge09+S5TZAlw5tgtiVvuERV6cT4mfutXIlwTb
+FYN/8oCIClDsqBklhB9KAelFiYt9+6FDj3z4KGVelYM5MdsO3pK
-----END CERTIFICATE-----
"""
RFC9773_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"

EXPECTED_KEYS = {
    KeyType.EC_P256: (ec.EllipticCurvePublicKey, 256, hashes.SHA256),
    KeyType.EC_P384: (ec.EllipticCurvePublicKey, 384, hashes.SHA384),
    KeyType.RSA_2048: (rsa.RSAPublicKey, 2048, hashes.SHA256),
    KeyType.RSA_3072: (rsa.RSAPublicKey, 3072, hashes.SHA256),
    KeyType.RSA_4096: (rsa.RSAPublicKey, 4096, hashes.SHA256),
}


def test_ari_cert_id_matches_rfc9773_example() -> None:
    """base64url(AKI keyIdentifier) "." base64url(serial DER content octets)."""
    cert = x509.load_pem_x509_certificate(RFC9773_CERT.encode())
    assert cert.serial_number == 0x87654321
    assert ari_cert_id(cert) == RFC9773_ID


@pytest.mark.parametrize(
    ("serial", "octets"),
    [
        (0, b"\x00"),
        (0x7F, b"\x7f"),
        (0x80, b"\x00\x80"),
        (0x87654321, b"\x00\x87\x65\x43\x21"),
    ],
)
def test_serial_der_bytes(serial: int, octets: bytes) -> None:
    """Serials get a leading zero octet when the high bit is set, as in DER."""
    assert serial_der_bytes(serial) == octets


def _self_signed(with_aki: bool) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    return certs.bare_certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")]),
        key=key,
        serial=0x80FF,
        extensions=[aki] if with_aki else [],
    )


def test_ari_cert_id_of_generated_certificate_and_without_aki() -> None:
    """A certificate without AKI has no ARI identifier; with one, the parts decode back."""
    assert ari_cert_id(_self_signed(with_aki=False)) is None
    cert = _self_signed(with_aki=True)
    cert_id = ari_cert_id(cert)
    assert cert_id is not None
    aki_part, serial_part = cert_id.split(".")
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert (
        base64.urlsafe_b64decode(aki_part + "=" * (-len(aki_part) % 4))
        == aki.key_identifier
    )
    assert serial_part == "AID_"
    assert top_issuer_common_name([cert]) == "Test Root"


@pytest.mark.parametrize("key_type", list(KeyType))
def test_csr_content(key_type: KeyType) -> None:
    """All names are in the SAN, the key has the asked type and size, the signature verifies."""
    names = ["myhome.duckdns.org", "*.myhome.duckdns.org"]
    fresh = generate_key_and_csr(key_type, names)
    csr = x509.load_der_x509_csr(fresh.csr_der)
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == names
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == names[0]
    key_class, size, hash_class = EXPECTED_KEYS[key_type]
    public = csr.public_key()
    assert isinstance(public, key_class)
    assert isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    assert public.key_size == size
    assert isinstance(csr.signature_hash_algorithm, hash_class)
    private = serialization.load_pem_private_key(fresh.private_key_pem.encode(), None)
    assert fresh.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_every_csr_has_a_fresh_key() -> None:
    """Two CSRs never share a key."""
    first = generate_key_and_csr(KeyType.EC_P256, ["a.example"])
    second = generate_key_and_csr(KeyType.EC_P256, ["a.example"])
    assert first.public_key_der != second.public_key_der


def test_dns01_value_and_record_name() -> None:
    """TXT value = base64url(SHA-256(token "." thumbprint)); wildcards share the base record."""
    token, thumbprint = (
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
        "NzbLsXh8uDCcd-6MNwXF4W",
    )
    digest = hashlib.sha256(f"{token}.{thumbprint}".encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert dns01_txt_value(token, thumbprint) == expected
    assert len(expected) == 43
    assert (
        challenge_record_name("*.MyHome.duckdns.org.")
        == "_acme-challenge.myhome.duckdns.org"
    )
    assert (
        challenge_record_name("myhome.duckdns.org")
        == "_acme-challenge.myhome.duckdns.org"
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    extensions: list[x509.ExtensionType] | None = None,
) -> x509.Certificate:
    return certs.bare_certificate(
        subject, issuer, serial=7, extensions=extensions or []
    )


def test_ari_cert_id_needs_a_key_identifier() -> None:
    """An AKI naming only the issuer and serial (no keyIdentifier) gives no ARI identifier."""
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Old CA")])
    aki = x509.AuthorityKeyIdentifier(
        key_identifier=None,
        authority_cert_issuer=[x509.DirectoryName(issuer)],
        authority_cert_serial_number=1,
    )
    cert = _certificate(issuer, issuer, [aki])
    assert ari_cert_id(cert) is None


def test_top_issuer_common_name_edge_cases() -> None:
    """An empty chain or a root without CN has no issuer name; the last certificate counts."""
    assert top_issuer_common_name([]) is None
    org_only = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "No CN Inc")])
    leaf = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intermediate")]),
    )
    assert top_issuer_common_name([leaf]) == "Intermediate"
    assert top_issuer_common_name([leaf, _certificate(org_only, org_only)]) is None


def test_certificate_names() -> None:
    """The SAN DNS names, in order; none without a SAN extension."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.example")])
    san = x509.SubjectAlternativeName(
        [x509.DNSName("a.example"), x509.DNSName("*.a.example")]
    )
    assert certificate_names(_certificate(name, name, [san])) == [
        "a.example",
        "*.a.example",
    ]
    assert certificate_names(_certificate(name, name)) == []


def test_csr_for_a_long_name_has_no_common_name() -> None:
    """A first name over 64 characters cannot be the CN; it stays in the SAN."""
    long_name = f"{'a' * 60}.duckdns.org"
    csr = x509.load_der_x509_csr(
        build_csr(generate_private_key(KeyType.EC_P256), [long_name, "b.example"])
    )
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [long_name, "b.example"]


def test_csr_needs_a_name() -> None:
    """A CSR without names is refused."""
    with pytest.raises(ValueError, match="at least one name"):
        generate_key_and_csr(KeyType.EC_P256, [])
