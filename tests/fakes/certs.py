"""Certificate factory for tests: a private PKI and leaves of every sort.

Typical use::

    from tests.fakes import certs

    good = certs.issue(["example.test", "www.example.test"])   # root -> intermediate -> leaf
    good.fullchain_pem, good.key_pem, good.cert_der               # bytes
    certs.issue(["a.test"], expired=True)                         # or not_yet_valid=True
    certs.issue(["*.example.test"], key_type=certs.KeyType.RSA_2048)
    certs.self_signed(["example.test"])
    good.with_key(certs.generate_key(slot=1))                    # mismatched pair
    cert_path, key_path = good.write(tmp_path)                    # fullchain.pem / privkey.pem
    certs.shared_pki().write_bundle(tmp_path / "ca.pem")           # trust anchor (root)

Keys are generated once per (type, slot) and cached for the whole session;
certificates are cheap to make. Leaves issued without ``key=`` share the slot-0
key of their type: pass ``key=certs.generate_key(slot=N)`` for distinct keys. All certificates pass OpenSSL's
``VERIFY_X509_STRICT`` checks that Python's default context enables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import functools
import ipaddress
import os
from pathlib import Path
from typing import TypedDict, Unpack

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Fixed, wide validity for the CAs so that tests which freeze time still work.
CA_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
CA_NOT_AFTER = datetime(2060, 1, 1, tzinfo=UTC)
GARBAGE = b"\x00\x01this is not a certificate\xff\xfe" * 8


class KeyType(StrEnum):
    """Key algorithms the factory can make."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    ED25519 = "ed25519"


def new_key(key_type: KeyType = KeyType.EC_P256) -> CertificateIssuerPrivateKeyTypes:
    """Generate a fresh (uncached) private key."""
    match key_type:
        case KeyType.EC_P256:
            return ec.generate_private_key(ec.SECP256R1())
        case KeyType.EC_P384:
            return ec.generate_private_key(ec.SECP384R1())
        case KeyType.RSA_2048:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        case KeyType.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(key_type)


def generate_key(
    key_type: KeyType = KeyType.EC_P256, *, slot: int = 0
) -> CertificateIssuerPrivateKeyTypes:
    """Return the session-cached key for ``(key_type, slot)``; slots differ.

    Slots 0-99 are free for tests; the CAs use 100+ and `self_signed` uses 50.
    """
    return _cached_key(KeyType(key_type), slot)


@functools.cache
def _cached_key(key_type: KeyType, slot: int) -> CertificateIssuerPrivateKeyTypes:
    return new_key(key_type)


def _hash_for(
    key: CertificateIssuerPrivateKeyTypes,
) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def now_utc() -> datetime:
    """Return the current aware UTC time, whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def to_pem(certificates: Iterable[x509.Certificate]) -> bytes:
    """Return the PEM encoding of the certificates, concatenated."""
    return b"".join(
        cert.public_bytes(serialization.Encoding.PEM) for cert in certificates
    )


def key_to_pem(key: CertificateIssuerPrivateKeyTypes, style: str = "pkcs8") -> bytes:
    """Return an unencrypted key as PEM: ``pkcs8``, ``pkcs1`` (RSA) or ``sec1`` (EC)."""
    fmt = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
        "sec1": serialization.PrivateFormat.TraditionalOpenSSL,
    }[style]
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    )


def to_crlf(data: bytes) -> bytes:
    """Return the data with CRLF line ends."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def with_text_around(pem: bytes) -> bytes:
    """Return the PEM with text before, between and after the blocks."""
    body = pem.replace(
        b"-----END CERTIFICATE-----\n",
        b"-----END CERTIFICATE-----\nsubject=whatever\nissuer=whoever\n\n",
    )
    return b"Bag Attributes\n    friendlyName: test\n" + body + b"trailing text\n"


def write_file(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` (parents created) with ``mode``; return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode)
    return target


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A leaf certificate, its key and the intermediates to send with it."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    intermediates: tuple[x509.Certificate, ...] = ()
    root: x509.Certificate | None = None

    @property
    def cert_pem(self) -> bytes:
        """Return the leaf alone as PEM."""
        return to_pem([self.certificate])

    @property
    def chain_pem(self) -> bytes:
        """Return the intermediates as PEM."""
        return to_pem(self.intermediates)

    @property
    def fullchain_pem(self) -> bytes:
        """Return leaf + intermediates as PEM (what ``fullchain.pem`` holds)."""
        return to_pem([self.certificate, *self.intermediates])

    @property
    def cert_der(self) -> bytes:
        """Return the leaf as DER."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 PEM."""
        return key_to_pem(self.key)

    def key_pem_as(self, style: str) -> bytes:
        """Return the key as ``pkcs8``, ``pkcs1`` (RSA) or ``sec1`` (EC) PEM."""
        return key_to_pem(self.key, style)

    @property
    def key_der(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 DER."""
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def encrypted_key_pem(self, password: bytes = b"secret") -> bytes:
        """Return the key as encrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )

    @property
    def fingerprint_sha256(self) -> str:
        """Return the leaf fingerprint like ``AB:CD:...``."""
        digest = self.certificate.fingerprint(hashes.SHA256()).hex().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    def with_key(self, key: CertificateIssuerPrivateKeyTypes) -> IssuedCertificate:
        """Return the same certificate paired with another (mismatched) key."""
        return replace(self, key=key)

    def write(
        self,
        directory: str | os.PathLike[str],
        *,
        cert_name: str = "fullchain.pem",
        key_name: str = "privkey.pem",
        der: bool = False,
    ) -> tuple[Path, Path]:
        """Write the full chain (or the DER leaf) and the key; return both paths."""
        folder = Path(directory)
        cert = write_file(
            folder / cert_name, self.cert_der if der else self.fullchain_pem
        )
        key = write_file(folder / key_name, self.key_pem, 0o600)
        return cert, key


def _name(common_name: str | None, organization: str = "SRA Tests") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result


def _leaf_builder(
    names: Sequence[str],
    public_key: CertificateIssuerPublicKeyTypes,
    *,
    common_name: str | None,
    not_before: datetime,
    not_after: datetime,
    serial: int | None,
    issuer: x509.Name | None,
) -> x509.CertificateBuilder:
    """Return a leaf builder; ``issuer`` None makes it self-issued."""
    if common_name is None:
        common_name = next((n for n in names if not _is_ip(n) and len(n) <= 64), None)
    key_usage_encipherment = isinstance(public_key, rsa.RSAPublicKey)
    subject = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_usage_encipherment,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_general_names(names)),
            critical=common_name is None,
        )
    return builder


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _ca_certificate(
    subject: x509.Name,
    key: CertificateIssuerPrivateKeyTypes,
    *,
    signer: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Name,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None,
    authority_key_id: x509.AuthorityKeyIdentifier | None,
) -> x509.Certificate:
    """A CA certificate for ``key``, signed by ``signer`` (itself for a root)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
    )
    if authority_key_id is not None:
        builder = builder.add_extension(authority_key_id, critical=False)
    builder = builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    return builder.sign(signer, _hash_for(signer))


def _validity(
    *,
    not_before: datetime | None,
    not_after: datetime | None,
    valid_days: float,
    expired: bool,
    not_yet_valid: bool,
) -> tuple[datetime, datetime]:
    now = now_utc()
    if expired:
        return now - timedelta(days=100), now - timedelta(days=10)
    if not_yet_valid:
        return now + timedelta(days=10), now + timedelta(days=100)
    start = not_before if not_before is not None else now - timedelta(hours=1)
    end = not_after if not_after is not None else now + timedelta(days=valid_days)
    return start, end


def bare_certificate(
    subject: x509.Name,
    issuer: x509.Name | None = None,
    *,
    key: CertificateIssuerPrivateKeyTypes | None = None,
    serial: int = 1,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    """A certificate with only these fields (non-critical ``extensions``), signed by ``key``.

    Default: a fresh EC P-256 key, the subject as issuer, valid from now for a day.
    """
    key = key or new_key()
    start = not_before or now_utc()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, _hash_for(key))


class LeafOptions(TypedDict, total=False):
    """How a leaf is made: its key, names and validity (see `CertificateAuthority.issue`)."""

    key: CertificateIssuerPrivateKeyTypes | None
    key_type: KeyType
    common_name: str | None
    not_before: datetime | None
    not_after: datetime | None
    valid_days: float
    expired: bool
    not_yet_valid: bool
    serial: int | None


def _make_leaf(
    names: Sequence[str],
    options: LeafOptions,
    *,
    key_slot: int,
    ca: CertificateAuthority | None,
) -> IssuedCertificate:
    """A leaf signed by ``ca`` (the chain up to its root), or self-signed without one."""
    key = options.get("key") or generate_key(
        options.get("key_type", KeyType.EC_P256), slot=key_slot
    )
    start, end = _validity(
        not_before=options.get("not_before"),
        not_after=options.get("not_after"),
        valid_days=options.get("valid_days", 90),
        expired=options.get("expired", False),
        not_yet_valid=options.get("not_yet_valid", False),
    )
    if ca is None:
        certificate = _signed_leaf(
            names, key.public_key(), key, None, options.get("common_name"), start, end
        )
        return IssuedCertificate(certificate, key)
    certificate = ca.sign_leaf(
        names,
        key.public_key(),
        common_name=options.get("common_name"),
        not_before=start,
        not_after=end,
        serial=options.get("serial"),
    )
    intermediates = (ca.certificate, *ca.parents)[:-1]
    return IssuedCertificate(certificate, key, intermediates, ca.root)


def _signed_leaf(
    names: Sequence[str],
    public_key: CertificateIssuerPublicKeyTypes,
    signer: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Name | None,
    common_name: str | None,
    not_before: datetime,
    not_after: datetime,
    *,
    serial: int | None = None,
    authority_key_id: x509.AuthorityKeyIdentifier | None = None,
) -> x509.Certificate:
    builder = _leaf_builder(
        names,
        public_key,
        common_name=common_name,
        not_before=not_before,
        not_after=not_after,
        serial=serial,
        issuer=issuer,
    )
    if authority_key_id is not None:
        builder = builder.add_extension(authority_key_id, critical=False)
    return builder.sign(signer, _hash_for(signer))


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA (root or intermediate) that issues leaves and sub-CAs."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    parents: tuple[x509.Certificate, ...] = ()
    """Issuer chain above this CA, nearest first, root last (empty for a root)."""

    @classmethod
    def create_root(
        cls,
        common_name: str = "SRA Test Root CA",
        *,
        key: CertificateIssuerPrivateKeyTypes | None = None,
        key_type: KeyType = KeyType.EC_P256,
        not_before: datetime = CA_NOT_BEFORE,
        not_after: datetime = CA_NOT_AFTER,
    ) -> CertificateAuthority:
        """Create a self-signed root CA."""
        key = key or generate_key(key_type, slot=100)
        subject = _name(common_name)
        certificate = _ca_certificate(
            subject,
            key,
            signer=key,
            issuer=subject,
            not_before=not_before,
            not_after=not_after,
            path_length=None,
            authority_key_id=None,
        )
        return cls(certificate, key)

    @property
    def root(self) -> x509.Certificate:
        """Return the root certificate of this CA's hierarchy."""
        return self.parents[-1] if self.parents else self.certificate

    @property
    def cert_pem(self) -> bytes:
        """Return this CA's own certificate as PEM."""
        return to_pem([self.certificate])

    @property
    def bundle_pem(self) -> bytes:
        """Return the trust anchor (root) as PEM, for a ``ca_bundle`` file."""
        return to_pem([self.root])

    def write_bundle(self, path: str | os.PathLike[str]) -> Path:
        """Write the root certificate PEM to ``path``."""
        return write_file(path, self.bundle_pem)

    def _authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())

    def intermediate(
        self,
        common_name: str = "SRA Test Intermediate CA",
        *,
        key: CertificateIssuerPrivateKeyTypes | None = None,
        key_type: KeyType = KeyType.EC_P256,
        not_before: datetime = CA_NOT_BEFORE,
        not_after: datetime = CA_NOT_AFTER,
    ) -> CertificateAuthority:
        """Create a sub-CA signed by this CA."""
        key = key or generate_key(key_type, slot=101 + len(self.parents))
        certificate = _ca_certificate(
            _name(common_name),
            key,
            signer=self.key,
            issuer=self.certificate.subject,
            not_before=not_before,
            not_after=not_after,
            path_length=0,
            authority_key_id=self._authority_key_id(),
        )
        return CertificateAuthority(certificate, key, (self.certificate, *self.parents))

    def issue(
        self,
        names: Sequence[str] = ("example.test",),
        **options: Unpack[LeafOptions],
    ) -> IssuedCertificate:
        """Issue a leaf for ``names`` (DNS names, wildcards or IP addresses).

        The issued chain holds this CA and its parents except the root.
        Default validity: from an hour ago for ``valid_days`` (90) days;
        ``expired`` and ``not_yet_valid`` move it out of today.
        """
        return _make_leaf(names, options, key_slot=0, ca=self)

    def sign_leaf(
        self,
        names: Sequence[str],
        public_key: CertificateIssuerPublicKeyTypes,
        *,
        common_name: str | None,
        not_before: datetime,
        not_after: datetime,
        serial: int | None = None,
    ) -> x509.Certificate:
        """Sign a leaf certificate for ``public_key``."""
        return _signed_leaf(
            names,
            public_key,
            self.key,
            self.certificate.subject,
            common_name,
            not_before,
            not_after,
            serial=serial,
            authority_key_id=self._authority_key_id(),
        )

    def issue_for_public_key(
        self,
        names: Sequence[str],
        public_key: CertificateIssuerPublicKeyTypes,
        *,
        not_before: datetime,
        not_after: datetime,
    ) -> tuple[x509.Certificate, bytes]:
        """Sign a leaf for someone else's key (a CSR's); return it and the full chain PEM."""
        certificate = self.sign_leaf(
            names,
            public_key,
            common_name=None,
            not_before=not_before,
            not_after=not_after,
        )
        chain = (certificate, self.certificate, *self.parents)[:-1]
        return certificate, to_pem(chain)


@dataclass(frozen=True, slots=True)
class Pki:
    """A private hierarchy: root -> intermediate."""

    root: CertificateAuthority
    intermediate: CertificateAuthority

    @property
    def bundle_pem(self) -> bytes:
        """Return the root certificate PEM (the trust anchor)."""
        return self.root.bundle_pem

    def write_bundle(self, path: str | os.PathLike[str]) -> Path:
        """Write the root certificate PEM to ``path``."""
        return self.root.write_bundle(path)


@functools.cache
def shared_pki() -> Pki:
    """Return the session-wide root + intermediate (EC P-256)."""
    root = CertificateAuthority.create_root()
    return Pki(root, root.intermediate())


@functools.cache
def other_pki() -> Pki:
    """Return a second, unrelated hierarchy (for chains that do not link)."""
    root = CertificateAuthority.create_root(
        "SRA Other Root CA", key=generate_key(KeyType.EC_P256, slot=200)
    )
    return Pki(
        root,
        root.intermediate(
            "SRA Other Intermediate CA", key=generate_key(KeyType.EC_P256, slot=201)
        ),
    )


def issue(
    names: Sequence[str] = ("example.test",), **options: Unpack[LeafOptions]
) -> IssuedCertificate:
    """Issue a leaf from the shared intermediate (see `CertificateAuthority.issue`)."""
    return shared_pki().intermediate.issue(names, **options)


def self_signed(
    names: Sequence[str] = ("example.test",), **options: Unpack[LeafOptions]
) -> IssuedCertificate:
    """Return a self-signed leaf (not a CA) for ``names``."""
    return _make_leaf(names, options, key_slot=50, ca=None)
