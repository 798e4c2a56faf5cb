"""A home behind miniupnpd whose DuckDNS holds the LAN host's IPv6 address.

Home Assistant runs on the LAN host (tests/lan.py); its SSDP cache holds
the router the way Home Assistant keeps a router that answered over IPv4
and IPv6: one entry, every location in ``ssdp_all_locations``. The
internet connects from the provider's namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.secure_remote_access import port_forward_flow, router_keeping
from custom_components.secure_remote_access.const import (
    CONF_DUCKDNS_URL,
    CONF_IPV6_ADDRESS,
    CONF_IPV6_MODE,
    Ipv6Mode,
)
from custom_components.secure_remote_access.pinhole_keeping import PinholeKeeper
from custom_components.secure_remote_access.protocol import upnp
from custom_components.secure_remote_access.protocol.remote_access import (
    Hairpin,
    hairpin_probe,
)
from custom_components.secure_remote_access.proxy import CertificateServer
from tests.fakes import certs
from tests.fakes.miniupnpd import LAN_HOST6, LOCATION, HomeNetwork

from .common import NAME, managed_options, mock_entry, setup_integration
from .lan import HA_PORT, SENSOR, options_step, sensor_attributes

IGD2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
#: What DuckDNS saw as the home's IPv4 address: the provider's shared one.
SHARED_IPV4 = "81.2.69.200"


@contextmanager
def ssdp_sees(info: SsdpServiceInfo) -> Iterator[None]:
    """Home Assistant's SSDP cache holds ``info`` (tests may change it)."""

    async def by_st(_hass: HomeAssistant, st: str) -> list[SsdpServiceInfo]:
        return [info] if st == info.ssdp_st else []

    with patch("homeassistant.components.ssdp.async_get_discovery_info_by_st", by_st):
        yield


def router_seen_at(udn: str, *locations: str) -> SsdpServiceInfo:
    """The router as Home Assistant's SSDP keeps it: the last answer's
    location, and all of them."""
    return SsdpServiceInfo(
        ssdp_usn=f"{udn}::{IGD2}",
        ssdp_st=IGD2,
        upnp={},
        ssdp_location=locations[-1] if locations else None,
        ssdp_udn=udn,
        ssdp_all_locations=set(locations),
    )


async def router_udn(hass: HomeAssistant) -> str:
    """The UDN miniupnpd's description names."""
    udn = await upnp.gateway_udn(
        async_get_clientsession(hass), LOCATION, timeout_seconds=10
    )
    assert udn is not None
    return udn


@contextmanager
def served_by(server: CertificateServer | None) -> Iterator[None]:
    """Who serves the managed certificate (None: nobody any more)."""

    async def who(*_args: Any) -> CertificateServer | None:
        return server

    with (
        patch.object(port_forward_flow, "async_who_serves_managed", who),
        patch.object(router_keeping, "async_who_serves_managed", who),
    ):
        yield


def proxy_on(port: int) -> AbstractContextManager[None]:
    """The NGINX proxy app serves the managed certificate on ``port``."""
    return served_by(CertificateServer("NGINX Home Assistant SSL proxy", port))


@dataclass
class Ipv6Home:
    """Home Assistant, the router, the provider, and the entry under test."""

    hass: HomeAssistant
    network: HomeNetwork
    duckdns_url: str
    tmp_path: Path
    #: The router in Home Assistant's SSDP cache (change its locations freely).
    seen: SsdpServiceInfo
    issued: certs.IssuedCertificate = field(default_factory=lambda: certs.issue([NAME]))
    entry: MockConfigEntry | None = None

    @property
    def ours(self) -> frozenset[str]:
        """The managed certificate's fingerprint."""
        return frozenset({self.issued.fingerprint_sha256})

    @property
    def keeper(self) -> PinholeKeeper:
        """The entry's pinhole keeper."""
        assert self.entry is not None
        keeper: PinholeKeeper = self.entry.runtime_data.pinhole
        return keeper

    def make_entry(self, address: str = LAN_HOST6) -> MockConfigEntry:
        """The entry (not set up): a managed certificate, DuckDNS holds ``address``."""
        cert, key = self.issued.write(self.tmp_path)
        options = {
            **managed_options(cert, key),
            CONF_IPV6_MODE: Ipv6Mode.FIXED,
            CONF_IPV6_ADDRESS: address,
        }
        self.entry = mock_entry(options, **{CONF_DUCKDNS_URL: self.duckdns_url})
        return self.entry

    async def setup(self, address: str = LAN_HOST6) -> MockConfigEntry:
        """Set the entry up (made first unless it is there) and let it settle."""
        entry = self.entry or self.make_entry(address)
        await setup_integration(self.hass, entry)
        await self.hass.async_block_till_done(wait_background_tasks=True)
        return entry

    async def step(self, step: str) -> dict[str, Any]:
        """The options flow's ``step``."""
        assert self.entry is not None
        return await options_step(self.hass, self.entry.entry_id, step)

    async def submit(self, form: dict[str, Any], **values: Any) -> dict[str, Any]:
        """Submit ``form`` and let what follows settle."""
        done = await self.hass.config_entries.options.async_configure(
            form["flow_id"], values
        )
        await self.hass.async_block_till_done(wait_background_tasks=True)
        return dict(done)

    async def open(self) -> dict[str, Any]:
        """Open the pinhole through the options flow, with consent."""
        form = await self.step("pinhole_https")
        return await self.submit(form, consent=True)

    async def from_internet(
        self, address: str = LAN_HOST6, port: int = HA_PORT
    ) -> Hairpin:
        """A TLS handshake from the provider to ``address`` (2 s: dropped)."""
        return await self.network.loop(self.network.provider).run(
            hairpin_probe(address, [port], NAME, self.ours, timeout_seconds=2)
        )

    async def later(self, minutes: int) -> None:
        """Let ``minutes`` pass."""
        async_fire_time_changed(
            self.hass, dt_util.utcnow() + timedelta(minutes=minutes)
        )
        await self.hass.async_block_till_done(wait_background_tasks=True)

    async def router(self, action: str, *args: Any) -> None:
        """``stop``, ``start``, ``reboot`` or ``boot_before_prefix`` the router."""
        await asyncio.to_thread(getattr(self.network, action), *args)

    async def router_at(self, *locations: str) -> None:
        """Home Assistant's SSDP has seen the router (again) at ``locations``,
        the IPv4 one first (miniupnpd has a new UDN at each start)."""
        udn = await upnp.gateway_udn(
            async_get_clientsession(self.hass), locations[0], timeout_seconds=10
        )
        assert udn is not None
        seen = router_seen_at(udn, *locations)
        for name in ("ssdp_usn", "ssdp_udn", "ssdp_location", "ssdp_all_locations"):
            setattr(self.seen, name, getattr(seen, name))

    def state(self) -> str:
        """The Remote access sensor's state."""
        found = self.hass.states.get(SENSOR)
        assert found is not None
        return found.state

    def attributes(self) -> dict[str, Any]:
        """The Remote access sensor's attributes."""
        return sensor_attributes(self.hass)
