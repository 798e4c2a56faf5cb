"""Unit tests of problem documents, Retry-After parsing and response decoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
import pytest

from custom_components.secure_remote_access.protocol.acme import AccountKey, AcmeClient
from custom_components.secure_remote_access.protocol.acme.errors import (
    MAX_DETAIL_CHARS,
    AccountDoesNotExistError,
    AcmeError,
    AcmeProblemError,
    AlreadyReplacedError,
    AuthorizationInvalidError,
    BadNonceError,
    InvalidProfileError,
    OrderNotReadyError,
    RateLimitedError,
    RejectedIdentifierError,
    ServiceUnavailableError,
    UnauthorizedError,
    parse_retry_after,
    problem_from_json,
)
from custom_components.secure_remote_access.protocol.acme.messages import (
    Authorization,
    Directory,
    RenewalInfo,
)
from custom_components.secure_remote_access.protocol.acme.transport import (
    AcmeResponse,
    error_from_response,
)

NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def _response(
    status: int,
    body: bytes,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
) -> AcmeResponse:
    return AcmeResponse(
        status,
        "https://ca.example/acme/x",
        CIMultiDictProxy(CIMultiDict(headers or {})),
        body,
    )


def test_retry_after_delta_seconds_and_http_date() -> None:
    """Both Retry-After forms give an aware UTC time; garbage gives None."""
    assert parse_retry_after("120", NOW) == NOW + timedelta(seconds=120)
    assert parse_retry_after(" 0 ", NOW) == NOW
    when = parse_retry_after("Sun, 01 Nov 2026 12:30:00 GMT", NOW)
    assert when == datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    assert when is not None
    assert when.tzinfo is UTC
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("-5", NOW) is None


@pytest.mark.parametrize(
    ("short", "cls"),
    [
        ("badNonce", BadNonceError),
        ("rateLimited", RateLimitedError),
        ("unauthorized", UnauthorizedError),
        ("accountDoesNotExist", AccountDoesNotExistError),
        ("rejectedIdentifier", RejectedIdentifierError),
        ("orderNotReady", OrderNotReadyError),
        ("alreadyReplaced", AlreadyReplacedError),
        ("invalidProfile", InvalidProfileError),
        ("caa", AcmeProblemError),
    ],
)
def test_problem_types_map_to_classes(short: str, cls: type[AcmeProblemError]) -> None:
    """Each ACME error type gets its class; all are AcmeErrors."""
    error = problem_from_json(
        {"type": f"urn:ietf:params:acme:error:{short}", "detail": "d"}, status=400
    )
    assert type(error) is cls
    assert isinstance(error, AcmeError)
    assert error.short_type == short
    assert error.detail == "d"
    assert error.status == 400


def test_problem_with_subproblems() -> None:
    """Subproblems keep their type, detail and identifier."""
    error = problem_from_json(
        {
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "Some identifiers were rejected",
            "subproblems": [
                {
                    "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                    "detail": "blocked.example is forbidden",
                    "identifier": {"type": "dns", "value": "blocked.example"},
                },
                "not an object",
            ],
        },
        status=400,
    )
    assert isinstance(error, RejectedIdentifierError)
    assert len(error.subproblems) == 1
    assert error.subproblems[0].identifier == "blocked.example"
    assert error.subproblems[0].detail == "blocked.example is forbidden"
    assert "Some identifiers were rejected" in str(error)


def test_problem_text_is_one_bounded_line() -> None:
    """Details (subproblems' too) lose line breaks and control characters and
    end with an ellipsis beyond MAX_DETAIL_CHARS; short ones are kept as sent."""
    error = problem_from_json(
        {
            "type": "urn:ietf:params:acme:error:dns\n",
            "detail": "DNS problem:\tSERVFAIL\r\n\x00looking up TXT" + " x" * 5000,
            "subproblems": [{"type": "about:blank", "detail": "line\nbreak"}],
        }
    )
    assert error.type == "urn:ietf:params:acme:error:dns"
    assert error.detail.startswith("DNS problem: SERVFAIL looking up TXT x x")
    assert MAX_DETAIL_CHARS - 2 <= len(error.detail) <= MAX_DETAIL_CHARS
    assert error.detail.endswith("x…")
    assert error.subproblems[0].detail == "line break"
    short = "Error creating new order :: too many certificates (5)"
    assert problem_from_json({"type": "about:blank", "detail": short}).detail == short


def test_rate_limited_response_carries_retry_after() -> None:
    """A rateLimited problem response keeps the Retry-After time."""
    body = b'{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many"}'
    error = error_from_response(
        _response(
            429,
            body,
            {"Content-Type": "application/problem+json", "Retry-After": "3600"},
        )
    )
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is not None
    remaining = error.retry_after - datetime.now(UTC)
    assert timedelta(minutes=59) < remaining <= timedelta(hours=1)


def test_503_without_problem_document() -> None:
    """HTTP 503 with an HTML page is ServiceUnavailableError with the Retry-After date."""
    error = error_from_response(
        _response(
            503, b"<html>down</html>", {"Retry-After": "Sun, 01 Nov 2026 12:30:00 GMT"}
        )
    )
    assert isinstance(error, ServiceUnavailableError)
    assert error.status == 503
    assert error.retry_after == datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    generic = error_from_response(_response(500, b""))
    assert type(generic) is AcmeProblemError
    assert generic.detail == "HTTP 500"
    proxy = error_from_response(
        _response(502, b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n")
    )
    assert proxy.detail == (
        "HTTP 502: <html> <head><title>502 Bad Gateway</title></head>"
    )


def test_response_links_and_location() -> None:
    """Link headers (several, comma-joined, relative) and Location resolve to absolute URLs."""
    response = _response(
        200,
        b"",
        [
            ("Link", '<https://ca.example/cert/1/alternate/1>;rel="alternate"'),
            ("Link", '</dir>;rel="index", </cert/1/alternate/2>; rel=alternate'),
            ("Location", "/acme/order/7"),
        ],
    )
    assert response.links("alternate") == [
        "https://ca.example/cert/1/alternate/1",
        "https://ca.example/cert/1/alternate/2",
    ]
    assert response.links("index") == ["https://ca.example/dir"]
    assert response.location == "https://ca.example/acme/order/7"


def test_directory_parsing() -> None:
    """Directory meta: terms of service, profiles, EAB requirement; renewalInfo optional."""
    directory = Directory.from_json(
        {
            "newNonce": "n",
            "newAccount": "a",
            "newOrder": "o",
            "meta": {
                "termsOfService": "https://ca/tos",
                "externalAccountRequired": True,
                "profiles": {"classic": "90 days", "tlsserver": "short"},
            },
        }
    )
    assert directory.terms_of_service == "https://ca/tos"
    assert directory.external_account_required is True
    assert dict(directory.profiles) == {"classic": "90 days", "tlsserver": "short"}
    assert directory.renewal_info is None


def test_authorization_invalid_error_carries_challenge_problem() -> None:
    """The challenge error of an invalid authorization ends up in the typed error."""
    authz = Authorization.from_json(
        "https://ca/authz/1",
        {
            "identifier": {"type": "dns", "value": "myhome.duckdns.org"},
            "status": "invalid",
            "wildcard": True,
            "challenges": [
                {
                    "type": "dns-01",
                    "url": "https://ca/chall/1",
                    "status": "invalid",
                    "token": "t",
                    "error": {
                        "type": "urn:ietf:params:acme:error:unauthorized",
                        "detail": "Incorrect TXT record",
                    },
                }
            ],
        },
    )
    error = AuthorizationInvalidError(
        authz.name, authz.status, authz.failed_challenge_error()
    )
    assert error.identifier == "*.myhome.duckdns.org"
    assert isinstance(error.problem, UnauthorizedError)
    assert "Incorrect TXT record" in str(error)


def test_renewal_info_parsing() -> None:
    """Window times are aware UTC; a window ending before its start is malformed."""
    info = RenewalInfo.from_json(
        {
            "suggestedWindow": {
                "start": "2026-11-05T00:00:00Z",
                "end": "2026-11-06T12:00:00.5Z",
            },
            "explanationURL": "https://ca/why",
        },
        NOW,
    )
    assert info.start == datetime(2026, 11, 5, tzinfo=UTC)
    assert info.end == datetime(2026, 11, 6, 12, 0, 0, 500000, tzinfo=UTC)
    assert info.explanation_url == "https://ca/why"
    assert info.retry_after == NOW
    with pytest.raises(AcmeError):
        RenewalInfo.from_json(
            {
                "suggestedWindow": {
                    "start": "2026-11-06T00:00:00Z",
                    "end": "2026-11-05T00:00:00Z",
                }
            },
            None,
        )


def _offline_client(session: aiohttp.ClientSession, **options: Any) -> AcmeClient:
    """A client that is never asked to send anything (its poll delays only)."""
    return AcmeClient(
        session,
        "https://ca.invalid/dir",
        AccountKey.generate(),
        user_agent="test",
        **options,
    )


async def test_poll_delay_honours_retry_after() -> None:
    """Polling waits for Retry-After when later than the interval, capped by max_retry_after."""
    async with aiohttp.ClientSession() as session:
        client = _offline_client(session, poll_interval=0.5, max_retry_after=30)
        assert client._delay(_response(200, b"")) == 0.5
        assert 4 < client._delay(_response(200, b"", {"Retry-After": "5"})) <= 5
        assert client._delay(_response(200, b"", {"Retry-After": "0"})) == 0.5
        assert client._delay(_response(200, b"", {"Retry-After": "86400"})) == 30
        later = (datetime.now(UTC) + timedelta(seconds=10)).strftime(
            "%a, %d %b %Y %H:%M:%S GMT"
        )
        assert 8 < client._delay(_response(200, b"", {"Retry-After": later})) <= 10


async def test_poll_delay_starts_short_and_backs_off() -> None:
    """Without Retry-After: 0.5 s, then doubling up to the poll interval."""
    async with aiohttp.ClientSession() as session:
        client = _offline_client(session, poll_interval=2.0)
        delays = [client._delay(_response(200, b""), attempt) for attempt in range(4)]
        assert delays == [0.5, 1.0, 2.0, 2.0]
        with_header = client._delay(_response(200, b"", {"Retry-After": "3"}), 0)
        assert 2 < with_header <= 3
