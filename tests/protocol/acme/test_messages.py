"""Parsing of ACME objects: optional fields, and malformed objects refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from custom_components.secure_remote_access.protocol.acme import (
    MalformedResponseError,
    UnauthorizedError,
)
from custom_components.secure_remote_access.protocol.acme.messages import (
    Account,
    Authorization,
    Challenge,
    Directory,
    Order,
    RenewalInfo,
    parse_timestamp,
)

DIRECTORY: dict[str, Any] = {
    "newNonce": "https://ca/nonce",
    "newAccount": "https://ca/acct",
    "newOrder": "https://ca/order",
}
CHALLENGE: dict[str, Any] = {
    "type": "dns-01",
    "url": "https://ca/chall/1",
    "status": "pending",
    "token": "tok",
}
AUTHZ: dict[str, Any] = {
    "identifier": {"type": "dns", "value": "myhome.duckdns.org"},
    "status": "pending",
    "challenges": [CHALLENGE],
}
ORDER: dict[str, Any] = {
    "status": "pending",
    "identifiers": [{"type": "dns", "value": "myhome.duckdns.org"}],
    "authorizations": ["https://ca/authz/1"],
    "finalize": "https://ca/order/1/finalize",
}


def test_directory_optional_fields() -> None:
    """Endpoints and meta data beyond the three required URLs are optional."""
    bare = Directory.from_json(DIRECTORY)
    assert (bare.new_nonce, bare.new_account, bare.new_order) == (
        "https://ca/nonce",
        "https://ca/acct",
        "https://ca/order",
    )
    assert bare.revoke_cert is None
    assert bare.key_change is None
    assert bare.terms_of_service is None
    assert bare.website is None
    assert bare.caa_identities == ()
    assert bare.external_account_required is False
    assert dict(bare.profiles) == {}

    full = Directory.from_json(
        {
            **DIRECTORY,
            "revokeCert": "https://ca/revoke",
            "keyChange": "https://ca/key-change",
            "renewalInfo": "https://ca/ari",
            "meta": {
                "website": "https://ca.example",
                "caaIdentities": ["ca.example", "ca.example.net"],
                "externalAccountRequired": "yes",  # only a JSON true counts
                "termsOfService": "",
            },
        }
    )
    assert full.revoke_cert == "https://ca/revoke"
    assert full.key_change == "https://ca/key-change"
    assert full.renewal_info == "https://ca/ari"
    assert full.website == "https://ca.example"
    assert full.caa_identities == ("ca.example", "ca.example.net")
    assert full.external_account_required is False
    assert full.terms_of_service is None


def test_directory_tolerates_odd_caa_identities() -> None:
    """A caaIdentities that is not a list is ignored, not fatal."""
    directory = Directory.from_json({**DIRECTORY, "meta": {"caaIdentities": "ca"}})
    assert directory.caa_identities == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({k: v for k, v in DIRECTORY.items() if k != "newNonce"}, "newNonce"),
        ({**DIRECTORY, "newOrder": 7}, "newOrder"),
        ({**DIRECTORY, "newAccount": ""}, "newAccount"),
        ({**DIRECTORY, "meta": ["not", "an", "object"]}, "meta is not an object"),
        ({**DIRECTORY, "meta": {"profiles": ["classic"]}}, "profiles"),
    ],
)
def test_malformed_directory(data: dict[str, Any], message: str) -> None:
    """Missing endpoints or meta members of the wrong type are malformed."""
    with pytest.raises(MalformedResponseError, match=message):
        Directory.from_json(data)


def test_account_contact() -> None:
    """Contacts must be a list of strings; the orders URL is optional."""
    account = Account.from_json("https://ca/acct/1", {"status": "valid"})
    assert account.contact == ()
    assert account.orders is None
    with_orders = Account.from_json(
        "https://ca/acct/1",
        {"status": "valid", "contact": ["mailto:a@b"], "orders": "https://ca/o"},
    )
    assert with_orders.contact == ("mailto:a@b",)
    assert with_orders.orders == "https://ca/o"
    for contact in ("mailto:a@b", ["mailto:a@b", 5]):
        with pytest.raises(MalformedResponseError, match="contact"):
            Account.from_json(
                "https://ca/acct/1", {"status": "valid", "contact": contact}
            )
    with pytest.raises(MalformedResponseError, match="status"):
        Account.from_json("https://ca/acct/1", {})


def test_timestamps() -> None:
    """RFC 3339 with offset or Z becomes aware UTC; naive is taken as UTC; junk is refused."""
    assert parse_timestamp("2026-11-05T02:00:00+02:00", "t") == datetime(
        2026, 11, 5, tzinfo=UTC
    )
    naive = parse_timestamp("2026-11-05T00:00:00", "t")
    assert naive == datetime(2026, 11, 5, tzinfo=UTC)
    assert naive.tzinfo is UTC
    with pytest.raises(MalformedResponseError, match="order expires is not a"):
        parse_timestamp(1700000000, "order expires")
    with pytest.raises(MalformedResponseError, match="'tomorrow'"):
        parse_timestamp("tomorrow", "order expires")


def test_order_optional_fields() -> None:
    """certificate, expires, profile, replaces and error are parsed when present."""
    order = Order.from_json("https://ca/order/1", ORDER)
    assert order.status == "pending"
    assert [item.value for item in order.identifiers] == ["myhome.duckdns.org"]
    assert order.authorizations == ("https://ca/authz/1",)
    assert order.certificate is None
    assert order.expires is None
    assert order.profile is None
    assert order.replaces is None
    assert order.error is None

    invalid = Order.from_json(
        "https://ca/order/1",
        {
            **ORDER,
            "status": "invalid",
            "certificate": "https://ca/cert/1",
            "expires": "2026-11-08T12:00:00Z",
            "profile": "shortlived",
            "replaces": "aki.serial",
            "error": {
                "type": "urn:ietf:params:acme:error:unauthorized",
                "detail": "authorization failed",
            },
        },
    )
    assert invalid.certificate == "https://ca/cert/1"
    assert invalid.expires == datetime(2026, 11, 8, 12, tzinfo=UTC)
    assert invalid.profile == "shortlived"
    assert invalid.replaces == "aki.serial"
    assert isinstance(invalid.error, UnauthorizedError)
    assert invalid.error.detail == "authorization failed"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**ORDER, "identifiers": "myhome.duckdns.org"}, "identifiers is not a list"),
        ({**ORDER, "identifiers": ["myhome.duckdns.org"]}, "identifier is not an"),
        ({**ORDER, "identifiers": [{"type": "dns"}]}, "identifier has no valid"),
        ({**ORDER, "authorizations": "https://ca/authz/1"}, "authorizations"),
        ({**ORDER, "authorizations": [None]}, "authorizations"),
        ({k: v for k, v in ORDER.items() if k != "finalize"}, "finalize"),
        ({**ORDER, "expires": "soon"}, "order expires"),
    ],
)
def test_malformed_order(data: dict[str, Any], message: str) -> None:
    """Wrongly typed order members are malformed."""
    with pytest.raises(MalformedResponseError, match=message):
        Order.from_json("https://ca/order/1", data)


def test_authorization_lookups() -> None:
    """Challenges are found by type; no error and no such challenge give None."""
    authz = Authorization.from_json(
        "https://ca/authz/1",
        {
            **AUTHZ,
            "expires": "2026-11-08T00:00:00Z",
            "challenges": [
                {**CHALLENGE, "type": "http-01", "url": "https://ca/chall/0"},
                CHALLENGE,
            ],
        },
    )
    assert authz.name == "myhome.duckdns.org"
    assert authz.wildcard is False
    assert authz.expires == datetime(2026, 11, 8, tzinfo=UTC)
    dns = authz.challenge("dns-01")
    assert dns is not None
    assert dns.url == "https://ca/chall/1"
    assert authz.challenge("tls-alpn-01") is None
    assert authz.failed_challenge_error() is None

    empty = Authorization.from_json("https://ca/authz/2", {**AUTHZ, "challenges": []})
    assert empty.challenges == ()
    assert empty.challenge("dns-01") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**AUTHZ, "challenges": CHALLENGE}, "challenges is not a list"),
        ({**AUTHZ, "challenges": ["dns-01"]}, "challenge is not an object"),
        ({**AUTHZ, "challenges": [{**CHALLENGE, "url": None}]}, "challenge has no"),
        ({**AUTHZ, "identifier": "myhome.duckdns.org"}, "identifier is not an"),
        ({k: v for k, v in AUTHZ.items() if k != "identifier"}, "identifier"),
        ({**AUTHZ, "status": None}, "authorization has no valid 'status'"),
        ({**AUTHZ, "expires": []}, "authorization expires"),
    ],
)
def test_malformed_authorization(data: dict[str, Any], message: str) -> None:
    """Authorizations with broken members or challenges are malformed."""
    with pytest.raises(MalformedResponseError, match=message):
        Authorization.from_json("https://ca/authz/1", data)


def test_challenge_without_token_or_error() -> None:
    """Token and error are optional; a non-object error is ignored."""
    challenge = Challenge.from_json(
        {"type": "dns-01", "url": "u", "status": "valid", "error": "bad"}
    )
    assert challenge.token is None
    assert challenge.error is None
    with pytest.raises(MalformedResponseError, match="challenge is not an object"):
        Challenge.from_json(None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "no suggestedWindow"),
        ({"suggestedWindow": "2026-11-05"}, "no suggestedWindow"),
        (
            {"suggestedWindow": {"start": "2026-11-05T00:00:00Z"}},
            "suggestedWindow.end is not a timestamp",
        ),
        (
            {"suggestedWindow": {"start": "x", "end": "2026-11-05T00:00:00Z"}},
            "suggestedWindow.start is not a timestamp",
        ),
        (
            {
                "suggestedWindow": {
                    "start": "2026-11-05T00:00:00Z",
                    "end": "2026-11-05T00:00:00Z",
                }
            },
            "ends before it starts",
        ),
    ],
)
def test_malformed_renewal_info(data: dict[str, Any], message: str) -> None:
    """A renewalInfo needs a window whose end lies after its start."""
    with pytest.raises(MalformedResponseError, match=message):
        RenewalInfo.from_json(data, None)
