"""A gateway's WAN connection in use and the pinholes beside it, for the writer's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from custom_components.secure_remote_access.protocol.pinhole import Pinholes
from custom_components.secure_remote_access.protocol.upnp import (
    WanConnection,
    choose_connection,
    open_gateway,
)


@dataclass(frozen=True)
class Gateway:
    """What the writer works on: the connection, and its firewall if any."""

    connection: WanConnection
    firewall: Pinholes | None


@asynccontextmanager
async def gateway(location: str, *, timeout: float = 120) -> AsyncIterator[Gateway]:
    """Open the gateway at ``location`` and choose its connection; the block
    (with its session) is bounded by ``timeout`` seconds."""
    async with (
        aiohttp.ClientSession() as session,
        open_gateway(session, location, timeout_seconds=timeout) as opened,
    ):
        connection = await choose_connection(opened)
        yield Gateway(connection, Pinholes.beside(connection))
