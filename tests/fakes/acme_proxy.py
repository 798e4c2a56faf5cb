"""A Pebble that looks like another CA: a TLS proxy that hides what it offers.

Pebble 2.10 offers dns-persist-01 for every DNS identifier and has no switch
to turn it off; a CA that does not offer it yet (Let's Encrypt before its
roll-out, other CAs) is simulated by forwarding every request to Pebble
unchanged and removing ``dns-persist-01`` from the challenge lists of the
authorizations it returns. A CA whose directory has no ``meta`` at all (no
terms of service, profiles or EAB, as Caddy's acme_server and step-ca) is
simulated by removing it from the directory. Pebble builds its URLs from the
Host header, which is passed through, so every URL it returns points at the
proxy.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
from aiohttp import web

from .pebble import HOST, PebbleServer

DROPPED_CHALLENGE = "dns-persist-01"
_PASSED_HEADERS = (
    "Content-Type",
    "Location",
    "Replay-Nonce",
    "Link",
    "Retry-After",
    "Cache-Control",
)


class ChallengeFilterProxy:
    """Forwards to ``pebble``, hiding one challenge type from its authorizations."""

    def __init__(
        self,
        pebble: PebbleServer,
        *,
        dropped_challenge: str | None = DROPPED_CHALLENGE,
        directory_meta: bool = True,
    ) -> None:
        """Proxy ``pebble`` (started); ``directory_meta=False`` drops its meta."""
        self._pebble = pebble
        self._dropped_challenge = dropped_challenge
        self._directory_meta = directory_meta
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def directory_url(self) -> str:
        """The directory URL clients use instead of Pebble's."""
        return f"https://{HOST}:{self.port}/dir"

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
        body = self._rewritten(body)
        response = web.Response(status=upstream.status, body=body)
        for name, values in passed.items():
            for value in values:
                response.headers.add(name, value)
        return response

    def _rewritten(self, body: bytes) -> bytes:
        """The body without the dropped challenge type or directory meta."""
        try:
            data: Any = json.loads(body)
        except ValueError:
            return body
        if not isinstance(data, dict):
            return body
        if not self._directory_meta and "newNonce" in data:
            data.pop("meta", None)
        elif self._dropped_challenge and isinstance(data.get("challenges"), list):
            data["challenges"] = [
                item
                for item in data["challenges"]
                if not (
                    isinstance(item, dict)
                    and item.get("type") == self._dropped_challenge
                )
            ]
        else:
            return body
        return json.dumps(data).encode()
