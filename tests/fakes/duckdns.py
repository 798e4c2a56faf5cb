"""A DuckDNS-compatible HTTP server for tests and the sandbox.

It follows https://www.duckdns.org/spec.jsp: ``GET /update`` with ``domains``,
``token``, ``ip``, ``ipv6``, ``txt``, ``clear`` and ``verbose``; replies ``OK``
or ``KO`` (verbose: ``OK\\n<ipv4>\\n<ipv6>\\nUPDATED|NOCHANGE`` for addresses,
``OK\\n<txt>\\nUPDATED|NOCHANGE`` for TXT). Sending ``ipv6`` disables the
detection of IPv4 from the request's source address, as on the real service.
There is one TXT value per domain, shared by every name under it.

Outages can be simulated (HTML pages, HTTP errors, hanging requests), and TXT
changes can be forwarded to ``pebble-challtestsrv`` so that a real ACME server
sees them in DNS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web

SUFFIX = ".duckdns.org"
#: DuckDNS answers its TXT value for every name under a domain; challtestsrv
#: answers only the names it is told: the challenge records of both methods,
#: and the name itself (the target of a CNAME to ``myhome.duckdns.org``).
FORWARDED_PREFIXES = ("_acme-challenge.", "_validation-persist.", "")
Outage = Literal["html", "404", "500", "503", "hang", "garbage"] | None


@dataclass
class DomainRecord:
    """What the fake service stores for one sub-domain."""

    ipv4: str = ""
    ipv6: str = ""
    txt: str = ""


@dataclass
class FakeDuckDns:
    """In-memory DuckDNS account: one token, up to five sub-domains."""

    token: str
    domains: list[str]
    challtestsrv_url: str | None = None
    records: dict[str, DomainRecord] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    outage: Outage = None
    #: An outage met only by the next request that sets a TXT value (one-shot).
    txt_outage: Outage = None
    #: An outage met by every request that clears the TXT value.
    clear_outage: Outage = None
    detected_ipv4: str | None = None
    #: Requests arrive over IPv6 only: DuckDNS detects no IPv4 address.
    ipv6_only: bool = False
    #: How many requests the ``hang`` outages hold; ``on_hang`` hears of each.
    hanging: int = 0
    on_hang: Callable[[], None] | None = None
    #: Hears of every request (its query) once its own outage is decided.
    on_request: Callable[[dict[str, str]], None] | None = None

    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def release_hanging(self) -> None:
        """Let requests held by the ``hang`` outage finish (before shutting down)."""
        self._released.set()

    def __post_init__(self) -> None:
        """Create an empty record for every sub-domain."""
        self.domains = [_label(name) for name in self.domains]
        for name in self.domains:
            self.records.setdefault(name, DomainRecord())

    async def forget_txt(self) -> None:
        """Remove every TXT value this stand-in showed in DNS (between tests)."""
        try:
            for name in self.domains:
                await self._forward_txt(name, "")
        except aiohttp.ClientError:
            pass  # challtestsrv is gone already: nothing is shown

    def app(self) -> web.Application:
        """Return the aiohttp application serving ``/update``."""
        app = web.Application()
        app.router.add_get("/update", self.handle_update)
        return app

    async def handle_update(self, request: web.Request) -> web.StreamResponse:
        """Answer one update request like DuckDNS does."""
        query = dict(request.query)
        self.requests.append(query)
        outage = self.outage
        if self.txt_outage and query.get("txt") and query.get("clear") != "true":
            outage, self.txt_outage = self.txt_outage, None
        if self.clear_outage and query.get("clear") == "true":
            outage = self.clear_outage
        if self.on_request is not None:
            self.on_request(query)  # may set up an outage for the next request
        if outage == "hang":
            self.hanging += 1
            if self.on_hang is not None:
                self.on_hang()
            await self._released.wait()
        if outage == "html":
            return web.Response(
                text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                content_type="text/html",
            )
        if outage == "garbage":
            return web.Response(text="maintenance")
        if outage in ("404", "500", "503"):
            return web.Response(status=int(outage), text="error")

        verbose = query.get("verbose", "").lower() == "true"
        names = [_label(name) for name in query.get("domains", "").split(",") if name]
        if (
            query.get("token") != self.token
            or not names
            or any(name not in self.records for name in names)
        ):
            return web.Response(text="KO")

        if "txt" in query:
            return web.Response(text=await self._update_txt(names, query, verbose))

        ipv4 = query.get("ip", "")
        ipv6 = query.get("ipv6", "")
        if not ipv4 and "ipv6" not in query and not self.ipv6_only:
            ipv4 = self.detected_ipv4 or (request.remote or "")
        changed = False
        for name in names:
            record = self.records[name]
            if ipv4 and record.ipv4 != ipv4:
                record.ipv4, changed = ipv4, True
                await self._forward_a(name, ipv4)
            if ipv6 and record.ipv6 != ipv6:
                record.ipv6, changed = ipv6, True
        if not verbose:
            return web.Response(text="OK")
        status = "UPDATED" if changed else "NOCHANGE"
        return web.Response(text=f"OK\n{ipv4}\n{ipv6}\n{status}")

    async def _update_txt(
        self, names: list[str], query: dict[str, str], verbose: bool
    ) -> str:
        clear = query.get("clear", "").lower() == "true"
        value = "" if clear else query["txt"]
        changed = False
        for name in names:
            record = self.records[name]
            if record.txt != value:
                record.txt, changed = value, True
            await self._forward_txt(name, value)
        if not verbose:
            return "OK"
        return f"OK\n{value}\n{'UPDATED' if changed else 'NOCHANGE'}"

    async def _forward_a(self, name: str, address: str) -> None:
        """Publish the recorded IPv4 address as the name's A record, as DuckDNS does."""
        if not self.challtestsrv_url:
            return
        body = {"host": f"{name}{SUFFIX}.", "addresses": [address]}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.challtestsrv_url}/add-a", json=body) as response,
        ):
            response.raise_for_status()

    async def _forward_txt(self, name: str, value: str) -> None:
        """Show the one TXT value at every name the tests' CA looks up under it."""
        if not self.challtestsrv_url:
            return
        async with aiohttp.ClientSession() as session:
            for prefix in FORWARDED_PREFIXES:
                host = f"{prefix}{name}{SUFFIX}."
                # challtestsrv accumulates TXT values; DuckDNS keeps exactly one.
                calls = [("/clear-txt", {"host": host})]
                if value:
                    calls.append(("/set-txt", {"host": host, "value": value}))
                for path, body in calls:
                    async with session.post(
                        f"{self.challtestsrv_url}{path}", json=body
                    ) as response:
                        response.raise_for_status()


def _label(name: str) -> str:
    return name.strip().lower().removesuffix(SUFFIX)


async def start_fake_duckdns(
    fake: FakeDuckDns,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: bool = True,
) -> tuple[web.AppRunner, str]:
    """Serve ``fake`` and return the runner and its ``/update`` URL."""
    runner = (
        web.AppRunner(fake.app())
        if access_log
        else web.AppRunner(fake.app(), access_log=None)
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None)
    assert sockets
    bound_port = sockets[0].getsockname()[1]
    return runner, f"http://{host}:{bound_port}/update"


async def stop_fake_duckdns(fake: FakeDuckDns, runner: web.AppRunner) -> None:
    """Release hanging requests and shut the server down."""
    fake.release_hanging()
    await asyncio.sleep(0)
    await runner.cleanup()
    # A shared challtestsrv must not show one test's values to the next.
    await fake.forget_txt()
