"""Fixtures of the protocol tests: a leaf of the shared PKI, its CA bundle, local servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
import pytest

from tests.fakes import certs
from tests.protocol.common import NAMES


@pytest.fixture(scope="module")
def leaf() -> certs.IssuedCertificate:
    """Return a leaf from the shared private PKI, EC P-256."""
    return certs.issue(NAMES)


@pytest.fixture
def ca_bundle(tmp_path: Path) -> Path:
    """Write the shared root as a CA bundle."""
    return certs.shared_pki().write_bundle(tmp_path / "ca.pem")


@pytest.fixture
async def serve(
    socket_enabled: None,
) -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Start aiohttp apps on 127.0.0.1; each call returns its base URL (no trailing /)."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain session."""
    async with aiohttp.ClientSession() as session:
        yield session
