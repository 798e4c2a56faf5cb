"""A front for Pebble: a TLS proxy that changes only what the client sees.

Real CAs differ from Pebble where the client reads them: Let's Encrypt before
its roll-out offers no dns-persist-01, draft-02 servers spell the issuer list
``issuerDomainNames`` and ask for a hashed account URI, a CA may rename or
reorder its issuer names, or change its terms of service. Pebble has no switch
for any of this; the front forwards every request to Pebble unchanged and
edits the JSON it returns (the directory, the challenges of authorizations
and challenge replies). Pebble still validates as Pebble: a record naming an
issuer the front made up is refused by the real Pebble. Pebble builds its
URLs from the Host header, which is passed through, so every URL it returns
points at the front.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import ssl
from typing import Any, Self

import aiohttp
from aiohttp import web

from .pebble import HOST, PebbleServer

DNS_PERSIST = "dns-persist-01"
PEBBLE_ISSUERS_KEY = "issuer-domain-names"  # Pebble 2.10 speaks draft-01
_PASSED_HEADERS = (
    "Content-Type",
    "Location",
    "Replay-Nonce",
    "Link",
    "Retry-After",
    "Cache-Control",
)

type Edit = Callable[[dict[str, Any]], dict[str, Any] | None]
#: (method, path) -> None to pass Pebble's answer, or (HTTP status, problem
#: document, extra headers) to answer that instead.
type Refusal = Callable[[str, str], tuple[int, dict[str, Any], dict[str, str]] | None]


class AcmeFront:
    """Forwards to ``pebble``; ``edit_directory`` and ``edit_challenge`` change
    the directory and each challenge object on the way back (returning None
    drops a challenge); ``refuse`` answers a request with a problem document
    of the front's choosing instead (Pebble still saw the request, so its
    fresh nonce goes back with the problem, as a CA's would). ``requests``
    lists every (method, path, status) answered; a request Pebble refused for
    its nonce (5 % of them) is there too, then once more with the client's
    retry."""

    def __init__(
        self,
        pebble: PebbleServer,
        *,
        edit_directory: Edit | None = None,
        edit_challenge: Edit | None = None,
    ) -> None:
        """Front ``pebble`` (started)."""
        self._pebble = pebble
        self.edit_directory = edit_directory
        self.edit_challenge = edit_challenge
        self.refuse: Refusal | None = None
        self.requests: list[tuple[str, str, int]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def directory_url(self) -> str:
        """The directory URL clients use instead of Pebble's."""
        return f"https://{HOST}:{self.port}/dir"

    @property
    def orders(self) -> int:
        """How many orders Pebble created for clients of the front."""
        return self.requests.count(("POST", "/order-plz", 201))

    @property
    def accounts(self) -> int:
        """How many accounts Pebble created for clients of the front."""
        return self.requests.count(("POST", "/sign-me-up", 201))

    async def start(self) -> None:
        """Listen with Pebble's own listener certificate (same trusted CA bundle)."""
        assert self._pebble.workdir is not None
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(
            self._pebble.workdir / "listener-cert.pem",
            self._pebble.workdir / "listener-key.pem",
        )
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0, ssl_context=server_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> Self:
        """Start; the front stops at the end of the ``async with``."""
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        """Stop."""
        await self.stop()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {
            "Host": request.host,
            "X-Forwarded-Proto": "https",
            "User-Agent": request.headers.get("User-Agent", "proxy"),
        }
        if content_type := request.headers.get("Content-Type"):
            headers["Content-Type"] = content_type
        target = f"https://{HOST}:{self._pebble.acme_port}{request.rel_url.raw_path_qs}"
        async with self._session.request(
            request.method,
            target,
            data=await request.read(),
            headers=headers,
            ssl=self._pebble.ssl_context(),
        ) as upstream:
            body = await upstream.read()
            passed = {
                name: upstream.headers.getall(name)
                for name in _PASSED_HEADERS
                if name in upstream.headers
            }
        refusal = self.refuse(request.method, request.path) if self.refuse else None
        if refusal is not None:
            status, problem, extra = refusal
            self.requests.append((request.method, request.path, status))
            response = web.json_response(
                problem, status=status, content_type="application/problem+json"
            )
            for name, value in extra.items():
                response.headers[name] = value
            for value in passed.get("Replay-Nonce", []):
                response.headers.add("Replay-Nonce", value)
            return response
        self.requests.append((request.method, request.path, upstream.status))
        response = web.Response(status=upstream.status, body=self._edited(body))
        for name, values in passed.items():
            for value in values:
                response.headers.add(name, value)
        return response

    def _edited(self, body: bytes) -> bytes:
        try:
            data: Any = json.loads(body)
        except ValueError:
            return body
        if not isinstance(data, dict):
            return body
        if "newOrder" in data and self.edit_directory is not None:
            data = self.edit_directory(data) or data
        elif isinstance(data.get("challenges"), list):
            data["challenges"] = [
                edited
                for item in data["challenges"]
                if (edited := self._challenge(item)) is not None
            ]
        elif data.get("type") == DNS_PERSIST and "url" in data:
            data = self._challenge(data) or data
        else:
            return body
        return json.dumps(data).encode()

    def _challenge(self, item: Any) -> Any:
        if not isinstance(item, dict) or self.edit_challenge is None:
            return item
        return self.edit_challenge(item)


def persist_challenges(edit: Edit) -> Edit:
    """An edit of dns-persist-01 challenges only (other types pass unchanged)."""

    def edit_persist(challenge: dict[str, Any]) -> dict[str, Any] | None:
        return edit(challenge) if challenge.get("type") == DNS_PERSIST else challenge

    return edit_persist


class ChallengeFilterProxy(AcmeFront):
    """A Pebble without dns-persist-01 (a CA that does not offer it yet)."""

    def __init__(self, pebble: PebbleServer) -> None:
        """Front ``pebble``, dropping its dns-persist-01 challenges."""
        super().__init__(pebble, edit_challenge=persist_challenges(lambda _: None))
