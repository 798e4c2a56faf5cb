"""Fixtures for the ACME client tests: a shared Pebble, sessions, clients, solvers.

``pebble`` (plain, with a domain block list, profiles and one alternate root)
and ``pebble_eab`` (External Account Binding required) are started once per
session on free 127.0.0.1 ports. Tests that talk to them must request
``socket_enabled`` (the ``acme_session`` fixture does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from custom_components.secure_remote_access.protocol.acme import (
    AccountKey,
    AcmeClient,
    DnsPropagationChecker,
)
from tests.fakes.pebble import DuckDnsLikeSolver, PebbleServer

from .scripted import ScriptedAcme

USER_AGENT = "secure-remote-access-tests/0.1 (+https://github.com/)"


@pytest.fixture
def auto_enable_custom_integrations() -> None:
    """The protocol package has no Home Assistant parts: skip the hass fixture here."""


@pytest.fixture
async def acme_session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session standing in for Home Assistant's shared one."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_client(
    acme_session: aiohttp.ClientSession, pebble: PebbleServer
) -> Callable[..., AcmeClient]:
    """Build AcmeClients against the shared Pebble with a fresh key unless one is given."""

    def _make(
        key: AccountKey | None = None, server: PebbleServer | None = None, **kwargs: Any
    ) -> AcmeClient:
        target = server or pebble
        kwargs.setdefault("ssl_context", target.ssl_context())
        kwargs.setdefault("poll_interval", 0.1)
        return AcmeClient(
            acme_session,
            target.directory_url,
            key or AccountKey.generate(),
            user_agent=USER_AGENT,
            **kwargs,
        )

    return _make


@pytest.fixture
async def client(make_client: Callable[..., AcmeClient]) -> AcmeClient:
    """A client with a freshly registered account on the shared Pebble."""
    acme = make_client()
    await acme.register_account(terms_of_service_agreed=True)
    return acme


@pytest.fixture
def solver(pebble: PebbleServer) -> DuckDnsLikeSolver:
    """A DuckDNS-like solver (one TXT value per domain) publishing via challtestsrv."""
    return DuckDnsLikeSolver(pebble)


@pytest.fixture
def checker(pebble: PebbleServer) -> DnsPropagationChecker:
    """A propagation checker asking challtestsrv's DNS server."""
    return DnsPropagationChecker([pebble.dns_server], interval=0.05)


@pytest.fixture
async def ca(serve: Callable[[web.Application], Awaitable[str]]) -> ScriptedAcme:
    """Run the scripted CA on 127.0.0.1."""
    scripted = ScriptedAcme()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", scripted.handle)
    scripted.base = await serve(app)
    return scripted


@pytest.fixture
def make(ca: ScriptedAcme, http: aiohttp.ClientSession) -> Callable[..., AcmeClient]:
    """Clients of the scripted CA; by default with a known account URL."""

    def _make(**kwargs: Any) -> AcmeClient:
        kwargs.setdefault("account_url", ca.url("acct/1"))
        kwargs.setdefault("poll_interval", 0.01)
        return AcmeClient(
            http, ca.url("dir"), AccountKey.generate(), user_agent=USER_AGENT, **kwargs
        )

    return _make
