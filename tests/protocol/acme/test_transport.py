"""Transport tests against a scripted local HTTP server (nonces, retries, errors, headers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import json
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from custom_components.secure_remote_access.protocol.acme import (
    AccountKey,
    AcmeClient,
    AcmeConnectionError,
    AcmeTimeoutError,
    BadNonceError,
    InvalidProfileError,
    MalformedResponseError,
    RateLimitedError,
)
from custom_components.secure_remote_access.protocol.acme.jws import b64url_decode
from custom_components.secure_remote_access.protocol.acme.transport import (
    MAX_BAD_NONCE_TRIES,
    AcmeTransport,
)

from .conftest import USER_AGENT

BAD_NONCE: dict[str, object] = {
    "type": "urn:ietf:params:acme:error:badNonce",
    "detail": "JWS has an invalid anti-replay nonce",
}


@dataclass
class ScriptedCa:
    """A tiny ACME-looking server whose newAccount answers follow a script."""

    account_replies: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    user_agents: list[str | None] = field(default_factory=list)
    used_nonces: list[str] = field(default_factory=list)
    counter: int = 0
    directory_hits: int = 0
    hang: bool = False
    base: str = ""

    def _nonce(self) -> str:
        self.counter += 1
        return f"nonce-{self.counter}"

    async def directory(self, request: web.Request) -> web.Response:
        self.user_agents.append(request.headers.get("User-Agent"))
        self.directory_hits += 1
        if self.hang:
            await asyncio.sleep(5)
        return web.json_response(
            {
                "newNonce": f"{self.base}/nonce",
                "newAccount": f"{self.base}/account",
                "newOrder": f"{self.base}/order",
                "meta": {"profiles": {"classic": "x"}},
            }
        )

    async def nonce(self, request: web.Request) -> web.Response:
        self.user_agents.append(request.headers.get("User-Agent"))
        return web.Response(status=200, headers={"Replay-Nonce": self._nonce()})

    async def account(self, request: web.Request) -> web.Response:
        self.user_agents.append(request.headers.get("User-Agent"))
        assert request.content_type == "application/jose+json"
        body = await request.json()
        header = json.loads(b64url_decode(body["protected"]))
        self.used_nonces.append(header["nonce"])
        status, payload = (
            self.account_replies.pop(0) if self.account_replies else (200, {})
        )
        headers = {"Replay-Nonce": self._nonce()}
        if status >= 400:
            return web.Response(
                status=status,
                text=json.dumps(payload),
                content_type="application/problem+json",
                headers={**headers, "Retry-After": "60"},
            )
        if payload == {"garbage": True}:
            return web.Response(
                text="not json", headers={**headers, "Location": f"{self.base}/acct/1"}
            )
        return web.json_response(
            {"status": "valid", **payload},
            status=status,
            headers={**headers, "Location": f"{self.base}/acct/1"},
        )


@pytest.fixture
async def scripted(serve: Callable[[web.Application], Awaitable[str]]) -> ScriptedCa:
    """Run the scripted CA on 127.0.0.1."""
    ca = ScriptedCa()
    app = web.Application()
    app.router.add_get("/dir", ca.directory)
    app.router.add_route("HEAD", "/nonce", ca.nonce)
    app.router.add_post("/account", ca.account)
    ca.base = await serve(app)
    return ca


@pytest.fixture
def scripted_client(
    scripted: ScriptedCa, http: aiohttp.ClientSession
) -> Callable[..., AcmeClient]:
    """Clients talking to the scripted CA."""

    def _make(**kwargs: Any) -> AcmeClient:
        return AcmeClient(
            http,
            f"{scripted.base}/dir",
            AccountKey.generate(),
            user_agent=USER_AGENT,
            **kwargs,
        )

    return _make


async def test_bad_nonce_is_retried_with_the_fresh_nonce(
    scripted: ScriptedCa, scripted_client: Callable[..., AcmeClient]
) -> None:
    """Two badNonce answers are retried, each time with the nonce of the rejecting reply."""
    scripted.account_replies = [(400, BAD_NONCE), (400, BAD_NONCE), (201, {})]
    client = scripted_client()
    account = await client.register_account(terms_of_service_agreed=True)
    assert account.url.endswith("/acct/1")
    assert client.account_url == account.url
    # nonce-1 from HEAD newNonce, then nonce-2 and nonce-3 from the badNonce replies.
    assert scripted.used_nonces == ["nonce-1", "nonce-2", "nonce-3"]
    assert scripted.user_agents
    assert all(agent == USER_AGENT for agent in scripted.user_agents)


async def test_bad_nonce_retries_are_bounded(
    scripted: ScriptedCa, scripted_client: Callable[..., AcmeClient]
) -> None:
    """After MAX_BAD_NONCE_TRIES badNonce answers the error surfaces."""
    scripted.account_replies = [(400, BAD_NONCE)] * (MAX_BAD_NONCE_TRIES + 1)
    with pytest.raises(BadNonceError):
        await scripted_client().register_account(terms_of_service_agreed=True)
    assert len(scripted.used_nonces) == MAX_BAD_NONCE_TRIES == 20


async def test_rate_limit_problem_is_typed(
    scripted: ScriptedCa, scripted_client: Callable[..., AcmeClient]
) -> None:
    """rateLimited becomes RateLimitedError with status and Retry-After."""
    rate_limited: dict[str, object] = {
        "type": "urn:ietf:params:acme:error:rateLimited",
        "detail": "slow down",
    }
    scripted.account_replies = [(429, rate_limited)]
    with pytest.raises(RateLimitedError) as caught:
        await scripted_client().register_account(terms_of_service_agreed=True)
    assert caught.value.status == 429
    assert caught.value.retry_after is not None
    assert caught.value.detail == "slow down"


async def test_malformed_reply(
    scripted: ScriptedCa, scripted_client: Callable[..., AcmeClient]
) -> None:
    """A success reply that is not JSON is a MalformedResponseError."""
    scripted.account_replies = [(201, {"garbage": True})]
    with pytest.raises(MalformedResponseError, match="did not return JSON"):
        await scripted_client().register_account(terms_of_service_agreed=True)


async def test_directory_is_cached_and_profiles_checked_locally(
    scripted: ScriptedCa, scripted_client: Callable[..., AcmeClient]
) -> None:
    """The directory is fetched once; an unknown profile fails before any order."""
    client = scripted_client()
    assert dict((await client.directory()).profiles) == {"classic": "x"}
    with pytest.raises(InvalidProfileError) as caught:
        await client.new_order(["a.example"], profile="shortlived")
    assert caught.value.status is None
    await client.directory()
    assert scripted.directory_hits == 1
    assert scripted.used_nonces == []


async def test_request_timeout(
    scripted: ScriptedCa, scripted_client: Callable[..., AcmeClient]
) -> None:
    """A server that does not answer in time gives AcmeTimeoutError."""
    scripted.hang = True
    with pytest.raises(AcmeTimeoutError):
        await scripted_client(request_timeout=0.2).directory()


async def test_connection_refused(
    http: aiohttp.ClientSession, socket_enabled: None
) -> None:
    """Nothing listening: AcmeConnectionError, and the injected session stays open."""
    transport = AcmeTransport(http, "https://127.0.0.1:9/dir", user_agent=USER_AGENT)
    with pytest.raises(AcmeConnectionError):
        await transport.directory()
    assert not http.closed


def test_user_agent_is_required(http: aiohttp.ClientSession) -> None:
    """An empty User-Agent is refused."""
    with pytest.raises(ValueError):
        AcmeTransport(http, "https://127.0.0.1/dir", user_agent="")
