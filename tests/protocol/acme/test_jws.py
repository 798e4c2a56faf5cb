"""Unit tests of JWK thumbprints, JWS signing and External Account Binding."""

from __future__ import annotations

import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
import pytest

from custom_components.secure_remote_access.protocol.acme.jws import (
    AccountKey,
    ExternalAccountBinding,
    b64url,
    b64url_decode,
    jwk_thumbprint,
    public_key_jwk,
    sign_request,
)

# RFC 7638 section 3.1.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWK"
        "RXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMic"
        "AtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3"
        "XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_matches_rfc7638_example() -> None:
    """The RSA example of RFC 7638 gives the published thumbprint (extra members ignored)."""
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_thumbprint_of_rsa_public_key_object() -> None:
    """A cryptography RSA key built from the RFC numbers gives the same thumbprint."""
    n = int.from_bytes(b64url_decode(RFC7638_JWK["n"]), "big")
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    assert public_key_jwk(key) == {"e": "AQAB", "kty": "RSA", "n": RFC7638_JWK["n"]}
    assert jwk_thumbprint(public_key_jwk(key)) == RFC7638_THUMBPRINT


def test_ec_thumbprint_uses_canonical_members() -> None:
    """EC: SHA-256 over {"crv","kty","x","y"} in that order, no whitespace, 32-byte coordinates."""
    key = AccountKey.generate()
    jwk = key.jwk
    assert set(jwk) == {"crv", "kty", "x", "y"}
    assert jwk["crv"] == "P-256"
    assert len(b64url_decode(jwk["x"])) == 32
    assert len(b64url_decode(jwk["y"])) == 32
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    expected = b64url(hashlib.sha256(canonical.encode()).digest())
    assert key.thumbprint == expected
    assert jwk_thumbprint({**jwk, "use": "sig", "kid": "ignored"}) == expected


def test_thumbprint_rejects_unknown_key_type() -> None:
    """Unknown kty values are refused."""
    with pytest.raises(ValueError):
        jwk_thumbprint({"kty": "OKP", "x": "abc"})


def test_b64url_round_trip() -> None:
    """Base64url has no padding and decodes with or without it."""
    for data in (b"", b"f", b"fo", b"foo", bytes(range(256))):
        text = b64url(data)
        assert "=" not in text
        assert b64url_decode(text) == data


def _verify(key: AccountKey, body: bytes) -> tuple[dict[str, object], str]:
    jws = json.loads(body)
    assert set(jws) == {"protected", "payload", "signature"}
    signature = b64url_decode(jws["signature"])
    assert len(signature) == 64
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    signing_input = f"{jws['protected']}.{jws['payload']}".encode()
    key.public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    return json.loads(b64url_decode(jws["protected"])), jws["payload"]


def test_jws_with_embedded_jwk() -> None:
    """Before registration the protected header carries the JWK, and ES256 verifies."""
    key = AccountKey.generate()
    body = sign_request(key, "https://ca/new-acct", {"a": 1}, nonce="n1", kid=None)
    header, payload = _verify(key, body)
    assert header == {
        "alg": "ES256",
        "jwk": key.jwk,
        "nonce": "n1",
        "url": "https://ca/new-acct",
    }
    assert json.loads(b64url_decode(payload)) == {"a": 1}


def test_jws_with_kid_and_post_as_get() -> None:
    """After registration the header has kid (no jwk); POST-as-GET has an empty payload."""
    key = AccountKey.generate()
    body = sign_request(
        key, "https://ca/order/1", None, nonce="n2", kid="https://ca/acct/1"
    )
    header, payload = _verify(key, body)
    assert header == {
        "alg": "ES256",
        "kid": "https://ca/acct/1",
        "nonce": "n2",
        "url": "https://ca/order/1",
    }
    assert payload == ""


def test_jws_with_empty_object_payload() -> None:
    """A challenge response payload ``{}`` is not a POST-as-GET."""
    key = AccountKey.generate()
    _header, payload = _verify(key, sign_request(key, "u", {}, nonce="n", kid="k"))
    assert b64url_decode(payload) == b"{}"


def test_account_key_pem_round_trip() -> None:
    """PEM export and import keep the key; other key types are refused."""
    key = AccountKey.generate()
    again = AccountKey.from_pem(key.to_pem())
    assert again.jwk == key.jwk
    assert "BEGIN PRIVATE KEY" in key.to_pem()
    with pytest.raises(TypeError):
        AccountKey(ec.generate_private_key(ec.SECP384R1()))


def test_external_account_binding_is_hs256_over_the_jwk() -> None:
    """The EAB JWS has alg HS256, the CA's kid, the newAccount url and a valid MAC."""
    hmac_key = b64url(b"0123456789abcdef0123456789abcdef")
    key = AccountKey.generate()
    eab = ExternalAccountBinding("kid-1", hmac_key).sign(key.jwk, "https://ca/new-acct")
    header = json.loads(b64url_decode(eab["protected"]))
    assert header == {"alg": "HS256", "kid": "kid-1", "url": "https://ca/new-acct"}
    assert json.loads(b64url_decode(eab["payload"])) == key.jwk
    mac = hmac.new(
        b"0123456789abcdef0123456789abcdef",
        f"{eab['protected']}.{eab['payload']}".encode(),
        hashlib.sha256,
    ).digest()
    assert b64url_decode(eab["signature"]) == mac


def test_public_jwk_of_larger_curves_and_unsupported_ones() -> None:
    """P-384 coordinates are 48 bytes; curves JOSE does not name are refused."""
    jwk = public_key_jwk(ec.generate_private_key(ec.SECP384R1()).public_key())
    assert jwk["crv"] == "P-384"
    assert len(b64url_decode(jwk["x"])) == 48
    assert len(jwk_thumbprint(jwk)) == 43
    with pytest.raises(ValueError, match="unsupported curve secp256k1"):
        public_key_jwk(ec.generate_private_key(ec.SECP256K1()).public_key())


def test_account_key_from_pem_refuses_other_key_types() -> None:
    """An RSA or P-384 PEM is not an account key."""
    for key in (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP384R1()),
    ):
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with pytest.raises(TypeError, match="P-256"):
            AccountKey.from_pem(pem)
        with pytest.raises(TypeError, match="P-256"):
            AccountKey.from_pem(pem.decode())
