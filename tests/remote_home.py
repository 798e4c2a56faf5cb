"""A home network for the remote-access tests: DuckDNS, a router, the entry.

Plain helpers (the fixtures ``home`` and ``router_home`` are in conftest.py).
The router is `tests.fakes.igd.FakeIgd` (async_upnp_client's server) or
`tests.fakes.router.FakeRouter` (real routers' shapes); Home Assistant's
SSDP discovery is replaced by its location.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Address
from typing import Any
from unittest.mock import patch

import aiohttp
from async_upnp_client.aiohttp import AiohttpSessionRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.profiles.igd import IgdDevice
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access import remote_access
from custom_components.secure_remote_access.const import CONF_DNS_SERVER, DOMAIN
from custom_components.secure_remote_access.protocol.remote_access import Finding
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.igd import FakeIgd
from tests.fakes.router import FakeRouter

from .common import StartDuckDns, setup_duckdns_entry, setup_integration
from .restart import same_entry

SENSOR = "sensor.myhome_duckdns_org_remote_access"
PUBLIC = "203.0.113.7"
LOCAL = "127.0.0.1"
#: Lets the check ask the fake DNS (the ``fake_dns`` fixture answers, not this).
DNS_OPTIONS = {CONF_DNS_SERVER: "127.0.0.1:5353"}


@dataclass
class Home:
    """The test's home network: DuckDNS, the router, the entry."""

    hass: HomeAssistant
    duckdns: FakeDuckDns
    duckdns_url: str
    gateway: FakeIgd | FakeRouter
    discoverable: bool = True
    entry: MockConfigEntry | None = None

    @property
    def igd(self) -> FakeIgd:
        """The async_upnp_client gateway (the ``home`` fixture's)."""
        assert isinstance(self.gateway, FakeIgd)
        return self.gateway

    @property
    def router(self) -> FakeRouter:
        """The real-router-shaped gateway (the ``router_home`` fixture's)."""
        assert isinstance(self.gateway, FakeRouter)
        return self.gateway

    async def setup(self, options: dict[str, Any] | None = None) -> MockConfigEntry:
        """Set the entry up and wait for its first check."""
        self.entry = await setup_duckdns_entry(
            self.hass, self.duckdns_url, options or {}
        )
        await self.hass.async_block_till_done(wait_background_tasks=True)
        return self.entry

    async def restart(self, hass: HomeAssistant) -> MockConfigEntry:
        """Set the same entry up in ``hass`` (restarted) and wait for its first check."""
        assert self.entry is not None
        self.hass = hass
        self.entry = same_entry(hass, self.entry)
        await setup_integration(hass, self.entry)
        await hass.async_block_till_done(wait_background_tasks=True)
        return self.entry

    async def check(self) -> dict[str, Any]:
        """Run the action and return its response."""
        assert self.entry is not None
        response = await self.hass.services.async_call(
            DOMAIN,
            "check_remote_access",
            {"config_entry_id": self.entry.entry_id},
            blocking=True,
            return_response=True,
        )
        assert isinstance(response, dict)
        return response

    async def forward(
        self, external: int, internal: int, protocol: str = "TCP"
    ) -> None:
        """Add a port mapping through the gateway's own SOAP action."""
        async with aiohttp.ClientSession() as session:
            factory = UpnpFactory(AiohttpSessionRequester(session))
            device = IgdDevice(
                await factory.async_create_device(self.gateway.location), None
            )
            await device.async_add_port_mapping(
                IPv4Address("0.0.0.0"),  # noqa: S104
                external,
                protocol,
                internal,
                IPv4Address(LOCAL),
                True,
                "test",
                timedelta(0),
            )

    def state(self) -> str:
        """The sensor's state."""
        state = self.hass.states.get(SENSOR)
        assert state is not None
        return state.state

    def attributes(self) -> dict[str, Any]:
        """The sensor's attributes."""
        state = self.hass.states.get(SENSOR)
        assert state is not None
        return dict(state.attributes)

    def issues(self) -> dict[str, ir.IssueSeverity]:
        """The entry's remote-access issues: translation key -> severity."""
        assert self.entry is not None
        suffix = f"_{self.entry.entry_id}"
        return {
            issue.translation_key: issue.severity
            for (domain, issue_id), issue in ir.async_get(self.hass).issues.items()
            if domain == DOMAIN
            and issue_id.endswith(suffix)
            and issue.translation_key in {finding.value for finding in Finding}
        }


@asynccontextmanager
async def home_with(
    hass: HomeAssistant, start_duckdns: StartDuckDns, gateway: FakeIgd | FakeRouter
) -> AsyncIterator[Home]:
    """DuckDNS sees 203.0.113.7; ``gateway`` (started here) is the router SSDP found."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = PUBLIC
    await gateway.start()
    home = Home(hass, duckdns, url, gateway)

    async def discover(_hass: HomeAssistant) -> list[str] | None:
        return [gateway.location] if home.discoverable else []

    try:
        with (
            patch.object(remote_access, "async_discover_gateways", discover),
            patch.object(remote_access, "GATEWAY_TIMEOUT", 2.0),
        ):
            yield home
    finally:
        await gateway.stop()
