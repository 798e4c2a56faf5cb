"""Certificate keys, CSRs and certificate helpers (cryptography only).

Key generation and CSR signing are CPU-bound: the client runs
:func:`generate_key_and_csr` in the default executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from custom_components.secure_remote_access.protocol.x509.parse import common_name

from .jws import b64url

type CertificateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyType(StrEnum):
    """Certificate key algorithms the client can generate."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
_EC_BITS = {KeyType.EC_P256: 256, KeyType.EC_P384: 384}


def key_type_of(algorithm: str, size: int | None) -> KeyType | None:
    """The key type of a certificate's key (``"EC"``, 384: P-384); None for others.

    ``algorithm`` and ``size`` as `x509.key_type_and_size` gives them.
    """
    bits = {"EC": _EC_BITS, "RSA": _RSA_BITS}.get(algorithm, {})
    return next((key_type for key_type, n in bits.items() if n == size), None)


def generate_private_key(key_type: KeyType) -> CertificateKey:
    """Generate a fresh certificate key (CPU-bound: call from an executor)."""
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def private_key_pem(key: CertificateKey) -> str:
    """Serialize a private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def build_csr(key: CertificateKey, names: Sequence[str]) -> bytes:
    """Return a DER CSR for ``names`` (all in the SAN, the first also as CN if short)."""
    if not names:
        raise ValueError("a CSR needs at least one name")
    subject = (
        [x509.NameAttribute(NameOID.COMMON_NAME, names[0])]
        if len(names[0]) <= 64
        else []
    )
    algorithm: hashes.SHA256 | hashes.SHA384 = hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        algorithm = hashes.SHA384()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(subject))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]),
            critical=False,
        )
        .sign(key, algorithm)
    )
    return csr.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class KeyAndCsr:
    """A fresh certificate key (PKCS#8 PEM), its CSR (DER) and public key (DER)."""

    private_key_pem: str
    csr_der: bytes
    public_key_der: bytes


def generate_key_and_csr(key_type: KeyType, names: Sequence[str]) -> KeyAndCsr:
    """Generate a new certificate key and its CSR in one (blocking) step."""
    key = generate_private_key(key_type)
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyAndCsr(private_key_pem(key), build_csr(key, names), public_der)


def dns01_txt_value(token: str, account_thumbprint: str) -> str:
    """The dns-01 TXT value: base64url(SHA-256(token "." thumbprint)) (RFC 8555 section 8.4)."""
    key_authorization = f"{token}.{account_thumbprint}"
    return b64url(hashlib.sha256(key_authorization.encode("ascii")).digest())


def serial_der_bytes(serial: int) -> bytes:
    """The content octets of the DER INTEGER encoding a certificate serial number."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)


def ari_cert_id(cert: x509.Certificate) -> str | None:
    """The RFC 9773 certificate identifier, or None without an Authority Key Identifier."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if aki.key_identifier is None:
        return None
    return (
        f"{b64url(aki.key_identifier)}.{b64url(serial_der_bytes(cert.serial_number))}"
    )


def top_issuer_common_name(chain: Sequence[x509.Certificate]) -> str | None:
    """The issuer CN of the last certificate of a chain (the root it leads to)."""
    return common_name(chain[-1].issuer) if chain else None
