"""Tests of the DuckDNS client against a DuckDNS-compatible local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

import aiohttp
from aiohttp import web
import pytest

from custom_components.secure_remote_access.protocol.duckdns import (
    DEFAULT_UPDATE_URL,
    DuckDnsAuthError,
    DuckDnsClient,
    DuckDnsConnectionError,
    InvalidTokenError,
    normalize_token,
    parse_domains,
)
from custom_components.secure_remote_access.protocol.names import (
    InvalidDomainError,
    duckdns_label,
    normalize_duckdns_domain,
)
from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns

TOKEN = "a7c4d0ad-114e-40ef-ba1d-d217904a50f2"


@pytest.fixture
async def fake(socket_enabled: None) -> AsyncGenerator[tuple[FakeDuckDns, str]]:
    """A running fake DuckDNS with two names on one account."""
    service = FakeDuckDns(token=TOKEN, domains=["myhome", "cabin"])
    runner, url = await start_fake_duckdns(service)
    yield service, url
    await stop_fake_duckdns(service, runner)


@pytest.fixture
async def session(socket_enabled: None) -> AsyncGenerator[aiohttp.ClientSession]:
    """A client session closed after the test."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("myhome", ["myhome.duckdns.org"]),
        ("  MyHome.DuckDNS.org ", ["myhome.duckdns.org"]),
        ("b, a.duckdns.org,b", ["a.duckdns.org", "b.duckdns.org"]),
        ("a,b,c,d,e", [f"{x}.duckdns.org" for x in "abcde"]),
        ("my-home-2", ["my-home-2.duckdns.org"]),
    ],
)
def test_parse_domains_accepts(text: str, expected: list[str]) -> None:
    """Sub-names and full names, any case, spaces and duplicates are accepted."""
    assert parse_domains(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " , ",
        "a,b,c,d,e,f",
        "my_home",
        "-myhome",
        "myhome.example.com",
        "a.b.duckdns.org",
        "x" * 64,
        "https://myhome.duckdns.org",
    ],
)
def test_parse_domains_rejects(text: str) -> None:
    """Anything but one to five DuckDNS names is refused."""
    with pytest.raises(InvalidDomainError):
        parse_domains(text)


def test_token_format() -> None:
    """Tokens are UUIDs, normalised to lower case."""
    assert normalize_token(f" {TOKEN.upper()} ") == TOKEN
    for bad in ("", "not-a-token", TOKEN[:-1], TOKEN.replace("-", "")):
        with pytest.raises(InvalidTokenError):
            normalize_token(bad)


def test_names() -> None:
    """Full names are what we store; sub-names are what DuckDNS is sent."""
    assert normalize_duckdns_domain("MyHome.duckdns.org.") == "myhome.duckdns.org"
    assert duckdns_label("myhome.duckdns.org") == "myhome"


async def test_update_ipv4_detected(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession
) -> None:
    """All names update in one request; DuckDNS detects IPv4; NOCHANGE follows."""
    service, url = fake
    client = DuckDnsClient(session, TOKEN, base_url=url)
    result = await client.update(["myhome.duckdns.org", "cabin.duckdns.org"])
    assert result.ipv4 == "127.0.0.1"
    assert result.ipv6 is None
    assert result.changed
    assert len(service.requests) == 1
    assert service.requests[0]["domains"] == "myhome,cabin"
    assert service.requests[0]["verbose"] == "true"
    assert "ipv6" not in service.requests[0]
    again = await client.update(["myhome.duckdns.org", "cabin.duckdns.org"])
    assert not again.changed


async def test_update_ipv6_alone(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession
) -> None:
    """An IPv6 update carries only ipv6, which leaves IPv4 untouched."""
    service, url = fake
    client = DuckDnsClient(session, TOKEN, base_url=url)
    await client.update(["myhome"])
    result = await client.update(["myhome"], ipv6="2001:db8::1")
    assert result.ipv6 == "2001:db8::1"
    assert result.ipv4 is None
    assert service.records["myhome"].ipv4 == "127.0.0.1"
    assert service.records["myhome"].ipv6 == "2001:db8::1"
    assert "ip" not in service.requests[-1]
    fixed = await client.update(["myhome"], ipv4="203.0.113.7")
    assert fixed.ipv4 == "203.0.113.7"
    with pytest.raises(ValueError):
        await client.update(["myhome"], ipv6="not-an-address")


async def test_ko_is_auth_error(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession
) -> None:
    """A wrong token or a foreign name is KO."""
    _, url = fake
    with pytest.raises(DuckDnsAuthError):
        await DuckDnsClient(session, TOKEN.replace("a", "b"), base_url=url).update(
            ["myhome"]
        )
    with pytest.raises(DuckDnsAuthError):
        await DuckDnsClient(session, TOKEN, base_url=url).update(["stranger"])


@pytest.mark.parametrize("outage", ["html", "404", "500", "503", "garbage"])
async def test_outages_are_connection_errors(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession, outage: str
) -> None:
    """HTML pages, HTTP errors and other bodies are temporary failures."""
    service, url = fake
    service.outage = outage  # type: ignore[assignment]
    client = DuckDnsClient(session, TOKEN, base_url=url)
    with pytest.raises(DuckDnsConnectionError) as err:
        await client.update(["myhome"])
    assert TOKEN not in str(err.value)


async def test_timeout(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession
) -> None:
    """A hanging server is a connection error after the timeout."""
    service, url = fake
    service.outage = "hang"
    client = DuckDnsClient(session, TOKEN, base_url=url, timeout=0.2)
    with pytest.raises(DuckDnsConnectionError):
        await client.update(["myhome"])


async def test_refused(session: aiohttp.ClientSession) -> None:
    """Nothing listening is a connection error."""
    client = DuckDnsClient(session, TOKEN, base_url="http://127.0.0.1:9/update")
    with pytest.raises(DuckDnsConnectionError):
        await client.update(["myhome"])


async def test_txt_set_and_clear(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession
) -> None:
    """TXT values are set, verified and cleared per domain."""
    service, url = fake
    client = DuckDnsClient(session, TOKEN, base_url=url)
    result = await client.set_txt("myhome.duckdns.org", "abc123")
    assert result.txt == "abc123"
    assert result.changed
    assert service.records["myhome"].txt == "abc123"
    assert service.records["cabin"].txt == ""
    assert not (await client.set_txt("myhome", "abc123")).changed
    cleared = await client.clear_txt("myhome.duckdns.org")
    assert cleared.txt is None
    assert service.records["myhome"].txt == ""
    assert service.requests[-1]["clear"] == "true"
    with pytest.raises(ValueError):
        await client.set_txt("myhome", "")


async def test_requests_never_interleave(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession
) -> None:
    """Concurrent IP and TXT requests of one client run one after the other."""
    service, url = fake
    in_flight = 0
    peak = 0
    original = service.handle_update

    async def counting(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        try:
            return await original(request)
        finally:
            in_flight -= 1

    service.handle_update = counting  # type: ignore[method-assign]
    runner, counted_url = await start_fake_duckdns(service)
    try:
        client = DuckDnsClient(session, TOKEN, base_url=counted_url)
        await asyncio.gather(
            client.update(["myhome"]),
            client.set_txt("myhome", "one"),
            client.update(["myhome"], ipv6="2001:db8::2"),
            client.clear_txt("myhome"),
        )
    finally:
        await runner.cleanup()
    assert peak == 1
    assert service.records["myhome"].txt == ""
    assert service.records["myhome"].ipv6 == "2001:db8::2"
    del url


@pytest.fixture
async def scripted(
    serve: Callable[[web.Application], Awaitable[str]],
) -> tuple[list[str], str]:
    """A server answering every request with the next scripted body."""
    replies: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text=replies.pop(0))

    app = web.Application()
    app.router.add_get("/update", handle)
    return replies, f"{await serve(app)}/update"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("OK", "unexpected reply to an update request"),
        ("OK\n1.2.3.4\n\nMAYBE", "unexpected reply to an update request"),
    ],
)
async def test_update_reply_not_verbose(
    scripted: tuple[list[str], str],
    session: aiohttp.ClientSession,
    reply: str,
    message: str,
) -> None:
    """An update answer without the verbose lines is not trusted."""
    replies, url = scripted
    replies.append(reply)
    with pytest.raises(DuckDnsConnectionError, match=message):
        await DuckDnsClient(session, TOKEN, base_url=url).update(["myhome"])


@pytest.mark.parametrize("reply", ["OK", "OK\nabc\nDONE"])
async def test_txt_reply_not_verbose(
    scripted: tuple[list[str], str], session: aiohttp.ClientSession, reply: str
) -> None:
    """A TXT answer without the verbose lines is not trusted."""
    replies, url = scripted
    replies.append(reply)
    with pytest.raises(DuckDnsConnectionError, match="unexpected reply to a TXT"):
        await DuckDnsClient(session, TOKEN, base_url=url).set_txt("myhome", "abc")


async def test_txt_value_not_recorded(
    scripted: tuple[list[str], str], session: aiohttp.ClientSession
) -> None:
    """DuckDNS echoing another TXT value than the one sent (or not clearing) is an error."""
    replies, url = scripted
    client = DuckDnsClient(session, TOKEN, base_url=url)
    replies.append("OK\nabc12\nUPDATED")
    with pytest.raises(DuckDnsConnectionError, match="did not record"):
        await client.set_txt("myhome", "abc123")
    replies.append("OK\nabc123\nNOCHANGE")
    with pytest.raises(DuckDnsConnectionError, match="did not clear"):
        await client.clear_txt("myhome")
    for cleared in ("OK\n\nUPDATED", "OK\nremoved\nNOCHANGE"):
        replies.append(cleared)
        result = await client.clear_txt("myhome")
        assert result.txt is None
        assert result.changed is cleared.endswith("UPDATED")


async def test_base_url_and_empty_domain_list(
    fake: tuple[FakeDuckDns, str], session: aiohttp.ClientSession
) -> None:
    """The endpoint is the real service unless given; an empty name list sends nothing."""
    service, url = fake
    assert DuckDnsClient(session, TOKEN).base_url == DEFAULT_UPDATE_URL
    client = DuckDnsClient(session, TOKEN, base_url=url)
    assert client.base_url == url
    with pytest.raises(InvalidDomainError):
        await client.update([])
    with pytest.raises(ValueError):
        await client.set_txt("myhome", "removed")
    assert service.requests == []
