"""Tests for protocol/x509/model.py: CertificateInfo and key descriptions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
import json
from pathlib import Path

import pytest

from custom_components.secure_remote_access.protocol import x509
from tests.fakes import certs


def test_certificate_info_is_frozen_and_serializable(
    leaf: certs.IssuedCertificate,
) -> None:
    """The info is immutable and its dict form is JSON-ready, without secrets."""
    info = x509.inspect_pem(leaf.fullchain_pem, key_pem=leaf.key_pem)
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
    info = x509.read_certificate_file(cert_path, key_path)
    assert (info.key_type, info.key_size) == expected
    assert info.key_matches is True


def test_dates_and_helpers() -> None:
    """days_remaining / is_expired / is_not_yet_valid follow the given now."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    issued = certs.issue(
        ["example.test"], not_before=start, not_after=start + timedelta(days=90)
    )
    info = x509.inspect_pem(issued.cert_pem)
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

    expired = x509.inspect_pem(certs.issue(["a.test"], expired=True).cert_pem)
    now = datetime.now(UTC)
    assert expired.is_expired(now) is True
    assert expired.days_remaining(now) < 0
    future = x509.inspect_pem(certs.issue(["a.test"], not_yet_valid=True).cert_pem)
    assert future.is_not_yet_valid(now) is True
    assert future.is_expired(now) is False


def test_missing_names_with_wildcards() -> None:
    """Expected ``*.`` names need an identical SAN; others follow matching rules."""
    info = x509.inspect_pem(certs.issue(["example.test", "*.Example.test"]).cert_pem)
    assert (
        info.missing_names(["example.test", "*.example.test", "a.example.test"]) == []
    )
    assert info.missing_names(["*.other.test", "a.b.example.test", "*"]) == [
        "*.other.test",
        "a.b.example.test",
        "*",
    ]
    assert info.covers("WWW.EXAMPLE.TEST")


def test_key_type_and_size_of_rarer_algorithms() -> None:
    """Ed448 and DSA are named with their sizes; other key kinds by their class name."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ed448, x25519

    assert x509.key_type_and_size(ed448.Ed448PrivateKey.generate()) == ("Ed448", 456)
    dsa_key = dsa.generate_private_key(1024)  # noqa: S505 - fast, size only reported
    assert x509.key_type_and_size(dsa_key.public_key()) == ("DSA", 1024)
    kind, size = x509.key_type_and_size(x25519.X25519PrivateKey.generate().public_key())
    assert kind.startswith("X25519")
    assert size is None
