"""HTTPS over IPv6 through a pinhole, through Home Assistant on Debian's
miniupnpd as the router: the way out of carrier-grade NAT (tests/ipv6_home.py).
"""

from __future__ import annotations

from typing import Any

from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.secure_remote_access.const import CONF_IPV6_ADDRESS, DOMAIN
from custom_components.secure_remote_access.pinhole_state import Pinhole, PinholeState
from custom_components.secure_remote_access.protocol.remote_access import Hairpin
from custom_components.secure_remote_access.proxy import CertificateServer
from tests.fakes.miniupnpd import (
    LAN_HOST6,
    LAN_HOST6_NEXT,
    LOCATION,
    LOCATION6,
    OTHER_HOST6,
    RouterConfig,
)
from tests.fakes.tls_server import tls_server

from .common import NAME
from .ipv6_home import Ipv6Home, served_by
from .lan import HA_PORT


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_https_over_ipv6_behind_carrier_grade_nat(ipv6_home: Ipv6Home) -> None:
    """Behind CGNAT with IPv6: the pinhole is opened on consent, reaches us
    from the internet, turns the sensor reachable, is opened again after a
    router reboot and closed when turned off."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        entry = await home.setup()
        # miniupnpd hides a shared WAN address: the IPv4 side is unknown.
        assert home.state() == "unknown"
        assert home.attributes()["reason"] == "wan_address_hidden"
        assert await home.from_internet() is Hairpin.NO_ANSWER

        form = await home.step("pinhole_https")
        assert form["type"] is FlowResultType.FORM, form
        assert form["description_placeholders"]["address"] == LAN_HOST6
        assert form["description_placeholders"]["url"] == f"https://{NAME}:8123"
        unticked = await home.submit(form, consent=False)
        assert unticked["errors"] == {"consent": "forward_consent_required"}
        assert await home.from_internet() is Hairpin.NO_ANSWER
        done = await home.submit(form, consent=True)
        assert done["reason"] == "pinhole_added", done
        assert await home.from_internet() is Hairpin.REACHED_US
        assert home.state() == "reachable"
        assert home.attributes()["ipv6_pinhole_port"] == HA_PORT
        response = await home.hass.services.async_call(
            DOMAIN,
            "check_remote_access",
            {"config_entry_id": entry.entry_id},
            blocking=True,
            return_response=True,
        )
        assert response is not None
        assert (response["state"], response["ipv6_pinhole_port"]) == (
            "reachable",
            HA_PORT,
        )

        await home.router("reboot")
        assert await home.from_internet() is Hairpin.NO_ANSWER
        await home.later(61)
        assert await home.from_internet() is Hairpin.REACHED_US

        stop = await home.step("pinhole_https_off")
        closed = await home.submit(stop)
        assert closed["reason"] == "pinhole_closed", closed
        assert await home.from_internet() is Hairpin.NO_ANSWER
        assert home.state() == "unknown"
        assert "ipv6_pinhole_port" not in home.attributes()


async def test_ipv6_of_another_device_is_never_opened(ipv6_home: Ipv6Home) -> None:
    """DuckDNS holds the IPv6 address of another LAN host: the step refuses
    to open anything and names the address."""
    await ipv6_home.setup(OTHER_HOST6)
    refused = await ipv6_home.step("pinhole_https")
    assert refused["reason"] == "pinhole_not_this_host"
    assert refused["description_placeholders"] == {"address": OTHER_HOST6}
    assert ipv6_home.keeper.state == PinholeState()


@pytest.mark.parametrize("router_config", [RouterConfig(igd_v1=True)])
async def test_a_router_without_pinholes_says_so(ipv6_home: Ipv6Home) -> None:
    """miniupnpd as a true IGDv1 offers no WANIPv6FirewallControl: the step
    says what to allow by hand in the router's IPv6 firewall."""
    await ipv6_home.setup()
    refused = await ipv6_home.step("pinhole_https")
    assert refused["reason"] == "pinhole_no_service", refused
    assert refused["description_placeholders"]["address"] == LAN_HOST6
    assert refused["description_placeholders"]["port"] == str(HA_PORT)


@pytest.mark.parametrize(
    ("locations", "reason"),
    [
        # Home Assistant's SSDP has seen the router over IPv4 only.
        ((LOCATION,), "pinhole_router_not_found"),
        # No router at all.
        ((), "forward_no_router"),
    ],
)
async def test_without_the_router_over_ipv6_nothing_is_opened(
    ipv6_home: Ipv6Home, locations: tuple[str, ...], reason: str
) -> None:
    """Pinholes are asked for over IPv6 only: a router Home Assistant has
    not found there (or none) gets nothing; the step says what to do."""
    ipv6_home.seen.ssdp_location = locations[-1] if locations else None
    ipv6_home.seen.ssdp_all_locations = set(locations)
    await ipv6_home.setup()
    refused = await ipv6_home.step("pinhole_https")
    assert refused["reason"] == reason
    assert ipv6_home.keeper.state == PinholeState()


async def test_pinholes_the_router_refuses_or_loses(ipv6_home: Ipv6Home) -> None:
    """A proxy on 443: miniupnpd refuses pinholes below 1024 (the form says
    so, nothing is kept). The router gone mid-change: the form says it did
    not answer, and what it may have opened is closed once it answers."""
    home = ipv6_home
    await home.setup()
    with served_by(CertificateServer("NGINX Home Assistant SSL proxy", 443)):
        refused = await home.open()
    assert refused["errors"] == {"base": "pinhole_not_authorized"}
    assert home.keeper.state == PinholeState()

    form = await home.step("pinhole_https")
    await home.router("stop")
    gone = await home.submit(form, consent=True)
    assert gone["errors"] == {"base": "pinhole_router_unreachable"}
    assert home.keeper.state.wanted is None
    assert [c.pinhole.port for c in home.keeper.state.closing] == [HA_PORT]
    await home.router("start")
    await home.later(6)
    assert home.keeper.state == PinholeState()


async def test_closing_while_the_router_is_away(ipv6_home: Ipv6Home) -> None:
    """The router does not answer the close: the step says so and that the
    lease ends it anyway; the close is sent again once it answers."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        await home.setup()
        assert (await home.open())["reason"] == "pinhole_added"
        await home.router("stop")
        stop = await home.step("pinhole_https_off")
        pending = await home.submit(stop)
        assert pending["reason"] == "pinhole_close_pending"
        assert pending["description_placeholders"]["reason"].startswith(
            "the router did not answer"
        )
        assert home.state() != "reachable"
        await home.router("start")  # it kept its rules: still open
        assert await home.from_internet() is Hairpin.REACHED_US
        await home.later(6)
        assert await home.from_internet() is Hairpin.NO_ANSWER
        assert home.keeper.state == PinholeState()


async def test_a_proxy_restarting_is_not_https_stopping(ipv6_home: Ipv6Home) -> None:
    """The pinhole leads to a proxy add-on: one look that finds nobody
    serving (the add-on restarting) keeps it; the second look closes it."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=8443):
        await home.setup()
        with served_by(CertificateServer("NGINX Home Assistant SSL proxy", 8443)):
            assert (await home.open())["reason"] == "pinhole_added"
        with served_by(None):
            await home.later(61)
            assert home.keeper.state.wanted == Pinhole(LOCATION6, LAN_HOST6, 8443)
            await home.later(6)
        assert home.keeper.state == PinholeState()


async def test_a_restart_mid_open_and_a_new_address_and_removal(
    ipv6_home: Ipv6Home, hass_storage: dict[str, Any]
) -> None:
    """Home Assistant stopped after storing the intent: the pinhole is opened
    at start. The provider gives a new prefix (DuckDNS now holds the new
    address): the pinhole moves there, the old one is closed. Deleting the
    entry closes it."""
    home = ipv6_home
    entry = home.make_entry()
    key = f"{DOMAIN}.pinhole_{entry.entry_id}"
    intent = PinholeState(Pinhole(LOCATION6, LAN_HOST6, HA_PORT))
    hass_storage[key] = {"version": 1, "key": key, "data": intent.as_dict()}
    home.network.lan.exec(
        "ip", "addr", "add", f"{LAN_HOST6_NEXT}/64", "dev", "eth0", "nodad"
    )
    async with (
        tls_server(home.issued, host=LAN_HOST6, port=HA_PORT),
        tls_server(home.issued, host=LAN_HOST6_NEXT, port=HA_PORT),
    ):
        await home.setup()
        assert home.keeper.state.confirmed
        assert await home.from_internet() is Hairpin.REACHED_US
        assert home.state() == "reachable"

        hass = home.hass
        hass.config_entries.async_update_entry(
            entry, options={**entry.options, CONF_IPV6_ADDRESS: LAN_HOST6_NEXT}
        )
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert home.keeper.state.wanted == Pinhole(LOCATION6, LAN_HOST6_NEXT, HA_PORT)
        assert await home.from_internet() is Hairpin.NO_ANSWER
        assert await home.from_internet(LAN_HOST6_NEXT) is Hairpin.REACHED_US
        assert home.state() == "reachable"

        assert await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert await home.from_internet(LAN_HOST6_NEXT) is Hairpin.NO_ANSWER
    assert key not in hass_storage


async def test_the_pinhole_closes_when_https_is_no_longer_served(
    ipv6_home: Ipv6Home,
) -> None:
    """Home Assistant stops serving the managed certificate (plain HTTP on
    its own port): the next look closes the pinhole on the router."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        await home.setup()
        assert (await home.open())["reason"] == "pinhole_added"
        assert await home.from_internet() is Hairpin.REACHED_US
        with served_by(None):
            await home.later(61)
        assert await home.from_internet() is Hairpin.NO_ANSWER
        assert home.keeper.state == PinholeState()
        assert "ipv6_pinhole_port" not in home.attributes()
