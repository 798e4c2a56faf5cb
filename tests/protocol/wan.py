"""A gateway's WAN connection and IPv6 firewall services, for the writer's tests.

Until the remote-access check's choice of the connected WAN service is on
main, the tests take the first WANIPConnection or WANPPPConnection service
of the description (miniupnpd and tests/fakes/igd.py have exactly one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from async_upnp_client.client import UpnpService
from async_upnp_client.client_factory import UpnpFactory

from custom_components.secure_remote_access.protocol.upnp import BoundedRequester

CONNECTION_TYPES = ("WANIPConnection", "WANPPPConnection")
FIREWALL_TYPE = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"


@dataclass(frozen=True)
class Gateway:
    """The services the writer works on."""

    connection: UpnpService
    firewall: UpnpService | None


@asynccontextmanager
async def gateway(location: str, *, timeout: int = 5) -> AsyncIterator[Gateway]:
    """Read the description at ``location``; the session lives as long as the block."""
    async with aiohttp.ClientSession() as session:
        requester = BoundedRequester(
            session, urlsplit(location).hostname or "", timeout=timeout
        )
        device = await UpnpFactory(requester, non_strict=True).async_create_device(
            location
        )
        services = list(device.all_services)
        connection = next(
            s for s in services if any(t in s.service_type for t in CONNECTION_TYPES)
        )
        firewall = next((s for s in services if s.service_type == FIREWALL_TYPE), None)
        yield Gateway(connection, firewall)
