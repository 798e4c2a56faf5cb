"""The IPv6 pinhole's stored state and the router's IPv6 address, without a router."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo
from homeassistant.util import dt as dt_util
import pytest

from custom_components.secure_remote_access import remote_access
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.pinhole_keeping import async_remove_pinholes
from custom_components.secure_remote_access.pinhole_state import (
    Closing,
    Pinhole,
    PinholeState,
)
from custom_components.secure_remote_access.port_forward_flow import async_refusal_words
from custom_components.secure_remote_access.protocol.port_forward import Refusal

ROUTER6 = "http://[2a0a:ffff:0:77::1]:5000/rootDesc.xml"
OURS = Pinhole(ROUTER6, "2a0a:ffff:0:77::20", 8123)
IGD2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "garbage",
        {"wanted": {"location": ROUTER6, "internal_client": "192.168.1.20", "port": 1}},
        {"wanted": {"location": ROUTER6, "internal_client": "::1", "port": 0}},
        {"wanted": {"location": ROUTER6}, "closing": 7, "confirmed": "yes"},
        {"closing": [{"until": "never", **OURS.as_dict()}, "x"], "refusal": 606},
        {"closing": [{"until": "2026-12-01T12:00:00", **OURS.as_dict()}]},
    ],
)
def test_a_damaged_store_opens_nothing(stored: object) -> None:
    """IPv4 clients, port 0, no lease end, naive times: forgotten, never sent."""
    assert PinholeState.from_dict(stored) == PinholeState()


def test_a_close_is_never_pending_longer_than_a_lease() -> None:
    """A damaged (or hand-edited) file's close "until 2100" ends with the
    longest lease we ask for: it is not sent to the router for ever."""
    far = {**OURS.as_dict(), "until": "2100-01-01T00:00:00+00:00"}
    state = PinholeState.from_dict({"closing": [far]})
    assert len(state.closing) == 1
    assert state.closing[0].until <= dt_util.utcnow() + timedelta(hours=2)


def test_the_stored_form_reads_back() -> None:
    """Wanted, confirmed, a refusal and a pending close survive a restart."""
    until = dt_util.utcnow().replace(microsecond=0)
    state = PinholeState(
        OURS,
        (Closing(Pinhole(ROUTER6, "2a0a:ffff:0:77::21", 8123), until),),
        confirmed=True,
        refusal="unreachable",
        established=True,
    )
    assert PinholeState.from_dict(state.as_dict()) == state
    assert OURS.request().internal_client == OURS.internal_client


async def test_the_router_over_ipv6_is_found_by_its_udn(hass: HomeAssistant) -> None:
    """Only global and unique local IPv6 locations of the same device count
    (global ones first): not IPv4, not link-local (it needs the interface
    named), not another device."""
    udn = "uuid:5ea1c0de-0000-4000-8000-000000000001"

    def info(location: str, device: str | None = udn) -> SsdpServiceInfo:
        return SsdpServiceInfo(
            ssdp_usn=f"{device}::{IGD2}",
            ssdp_st=IGD2,
            upnp={},
            ssdp_location=location,
            ssdp_udn=device,
        )

    cache = [
        info("http://192.168.1.1:5000/rootDesc.xml"),
        info("http://[fe80::1]:5000/rootDesc.xml"),
        info("http://[2a0a:ffff:0:99::1]:5000/rootDesc.xml", "uuid:other"),
        info("http://[fd00::1]:5000/rootDesc.xml"),
        info("http://192.168.1.1:5000/rootDesc.xml"),
        info("http://[2a0a:ffff:0:77::2]:5000/rootDesc.xml", None),
    ]
    # Home Assistant keeps the router's other locations in all locations.
    cache[-2].ssdp_all_locations = {ROUTER6}

    async def by_st(_hass: HomeAssistant, st: str) -> list[SsdpServiceInfo]:
        return cache if st == IGD2 else []

    assert await remote_access.async_discover_ipv6_gateways(hass, udn) == []
    hass.config.components.add("ssdp")
    with patch("homeassistant.components.ssdp.async_get_discovery_info_by_st", by_st):
        found = await remote_access.async_discover_ipv6_gateways(hass, udn)
    assert found == [
        ROUTER6,
        "http://[2a0a:ffff:0:77::2]:5000/rootDesc.xml",
        "http://[fd00::1]:5000/rootDesc.xml",
    ]


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (Refusal.FIREWALL_DISABLED, "its IPv6 firewall is switched off"),
        (
            Refusal.INBOUND_PINHOLE_NOT_ALLOWED,
            "its IPv6 firewall does not allow pinholes through UPnP",
        ),
        (Refusal.NO_PINHOLE_SERVICE, "it offers no IPv6 pinholes through UPnP"),
        (Refusal.PINHOLE_SPACE_EXHAUSTED, "it refused the change"),
    ],
)
async def test_why_a_close_is_pending_is_said_in_words(
    hass: HomeAssistant, reason: Refusal, words: str
) -> None:
    """A router whose IPv6 firewall refuses the close (702, 703, no service)
    is named in the pending-close message, not a bare "refused"."""
    assert await async_refusal_words(hass, reason) == words


async def test_an_ended_lease_needs_no_close(
    socket_enabled: None, hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    """The entry is deleted long after its pinhole's lease ended (and for an
    address this host no longer holds): nothing is sent, the Store goes."""
    key = f"{DOMAIN}.pinhole_entry"
    past = dt_util.utcnow() - timedelta(minutes=1)
    gone = Pinhole(ROUTER6, "2a0a:ffff:0:77::99", 8123)
    hass_storage[key] = {
        "version": 1,
        "key": key,
        "data": PinholeState(gone, (Closing(OURS, past),)).as_dict(),
    }
    with patch(
        "custom_components.secure_remote_access.pinhole_keeping.open_pinholes"
    ) as opened:
        await async_remove_pinholes(hass, "entry")
    opened.assert_not_called()
    assert key not in hass_storage
