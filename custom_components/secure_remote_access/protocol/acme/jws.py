"""JSON Web Signatures for ACME (RFC 7515, RFC 7638, RFC 8555 section 6.2).

The account key is an ECDSA P-256 key and signs with ES256. External Account
Binding (RFC 8555 section 7.3.4) is an HS256 MAC over the account's JWK.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
import hashlib
import hmac
import json
import re
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ACCOUNT_KEY_ALG: Final = "ES256"
_THUMBPRINT_MEMBERS: Final[dict[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}
_CURVES: Final[dict[str, tuple[str, int]]] = {
    "secp256r1": ("P-256", 32),
    "secp384r1": ("P-384", 48),
    "secp521r1": ("P-521", 66),
}


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL: Final = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def is_b64url(text: str) -> bool:
    """Whether ``text`` is non-empty base64url (what CAs hand out as EAB HMAC keys)."""
    return bool(_B64URL.fullmatch(text)) and len(text.rstrip("=")) % 4 != 1


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def public_key_jwk(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> dict[str, str]:
    """Return the public JWK (RFC 7518 section 6) of an EC or RSA public key."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVES.get(key.curve.name)
        if curve is None:
            raise ValueError(f"unsupported curve {key.curve.name}")
        crv, size = curve
        numbers = key.public_numbers()
        return {
            "crv": crv,
            "kty": "EC",
            "x": b64url(_int_bytes(numbers.x, size)),
            "y": b64url(_int_bytes(numbers.y, size)),
        }
    rsa_numbers = key.public_numbers()
    return {
        "e": b64url(_int_bytes(rsa_numbers.e)),
        "kty": "RSA",
        "n": b64url(_int_bytes(rsa_numbers.n)),
    }


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """Return the base64url SHA-256 JWK thumbprint (RFC 7638) of an EC, RSA or oct JWK."""
    kty = jwk.get("kty", "")
    members = _THUMBPRINT_MEMBERS.get(kty)
    if members is None:
        raise ValueError(f"unsupported JWK key type {kty!r}")
    canonical = {name: jwk[name] for name in members}
    return b64url(hashlib.sha256(_json_bytes(canonical)).digest())


class AccountKey:
    """An ACME account key: ECDSA P-256, signing with ES256."""

    __slots__ = ("_jwk", "_key", "_thumbprint")

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        """Wrap an existing P-256 private key."""
        if not isinstance(key.curve, ec.SECP256R1):
            raise TypeError("the ACME account key must be an ECDSA P-256 key")
        self._key = key
        self._jwk = public_key_jwk(key.public_key())
        self._thumbprint = jwk_thumbprint(self._jwk)

    @classmethod
    def generate(cls) -> AccountKey:
        """Create a new random account key (cheap, but still best run in an executor)."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> AccountKey:
        """Load an account key from (unencrypted) PEM."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("the ACME account key must be an ECDSA P-256 key")
        return cls(key)

    def to_pem(self) -> str:
        """Serialize the key as unencrypted PKCS#8 PEM."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def jwk(self) -> dict[str, str]:
        """The public JWK (a copy)."""
        return dict(self._jwk)

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 thumbprint of the public JWK."""
        return self._thumbprint

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the key."""
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        """Sign with ES256 and return the JWS form: R || S, 32 bytes each."""
        der = self._key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class ExternalAccountBinding:
    """EAB credentials handed out by the CA: key id and base64url HMAC key."""

    key_id: str
    hmac_key: str

    def sign(self, account_jwk: Mapping[str, str], url: str) -> dict[str, str]:
        """Return the ``externalAccountBinding`` JWS (HS256) for a newAccount request."""
        protected = b64url(
            _json_bytes({"alg": "HS256", "kid": self.key_id, "url": url})
        )
        payload = b64url(_json_bytes(dict(account_jwk)))
        mac = hmac.new(
            b64url_decode(self.hmac_key),
            f"{protected}.{payload}".encode("ascii"),
            hashlib.sha256,
        ).digest()
        return {"protected": protected, "payload": payload, "signature": b64url(mac)}


def sign_request(
    key: AccountKey,
    url: str,
    payload: Mapping[str, Any] | None,
    *,
    nonce: str,
    kid: str | None,
) -> bytes:
    """Build the flattened JWS body of an ACME POST.

    ``payload=None`` gives a POST-as-GET (empty payload). Without ``kid`` the
    public JWK is embedded (newAccount and account lookup).
    """
    header: dict[str, Any] = {"alg": ACCOUNT_KEY_ALG, "nonce": nonce, "url": url}
    if kid is None:
        header["jwk"] = key.jwk
    else:
        header["kid"] = kid
    protected = b64url(_json_bytes(header))
    encoded_payload = "" if payload is None else b64url(_json_bytes(dict(payload)))
    signature = key.sign(f"{protected}.{encoded_payload}".encode("ascii"))
    return _json_bytes(
        {
            "protected": protected,
            "payload": encoded_payload,
            "signature": b64url(signature),
        }
    )
