"""HTTPS over IPv6 through a pinhole, through Home Assistant on Debian's
miniupnpd as the router: the way out of carrier-grade NAT (tests/ipv6_home.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
import socket
from typing import Any

from async_upnp_client.aiohttp import AiohttpSessionRequester
from async_upnp_client.description_cache import DescriptionCache
from async_upnp_client.search import async_search
from async_upnp_client.utils import CaseInsensitiveDict
from homeassistant.components.ssdp.const import DOMAIN as SSDP, SSDP_SCANNER
from homeassistant.components.ssdp.scanner import IntegrationMatchers, Scanner
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest

from custom_components.secure_remote_access import remote_access
from custom_components.secure_remote_access.const import (
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_IPV6_ADDRESS,
    CONF_IPV6_MODE,
    DOMAIN,
    Ipv6Mode,
)
from custom_components.secure_remote_access.pinhole_state import Pinhole, PinholeState
from custom_components.secure_remote_access.protocol.remote_access import Hairpin
from tests.fakes import certs
from tests.fakes.miniupnpd import (
    LAN_HOST,
    LAN_HOST6,
    LAN_HOST6_NEXT,
    LOCATION,
    LOCATION6,
    LOCATION_ULA6,
    OTHER_HOST6,
    HomeNetwork,
    RouterConfig,
)
from tests.fakes.tls_server import tls_server

from .common import NAME, StartDuckDns, managed_options, mock_entry, setup_integration
from .ipv6_home import IGD2, SHARED_IPV4, Ipv6Home, proxy_on, router_udn, served_by
from .lan import HA_PORT, options_step


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


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_a_forward_still_cannot_help_once_ipv6_reaches_home(
    ipv6_home: Ipv6Home,
) -> None:
    """Behind CGNAT, the pinhole open (the sensor reachable over IPv6):
    "Forward HTTPS from the internet" still says that a forward on this
    router cannot be reached, instead of offering one over IPv4."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        await home.setup()
        assert (await home.step("forward_https"))["reason"] == "forward_behind_cgnat"
        assert (await home.open())["reason"] == "pinhole_added"
        assert home.state() == "reachable"
        refused = await home.step("forward_https")
        assert refused["type"] is FlowResultType.ABORT, refused
        assert refused["reason"] == "forward_behind_cgnat"


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
        ((), "pinhole_no_router"),
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
    with proxy_on(443):
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
        with proxy_on(8443):
            assert (await home.open())["reason"] == "pinhole_added"
        with served_by(None):
            await home.later(61)
            assert home.keeper.state.wanted == Pinhole(LOCATION6, LAN_HOST6, 8443)
            await home.later(6)
        assert home.keeper.state == PinholeState()


async def test_a_proxy_restarting_as_duckdns_sees_a_new_address(
    ipv6_home: Ipv6Home,
) -> None:
    """A power cut: the router comes back with a new prefix while the proxy
    add-on is still starting. The hourly look finds nobody serving; a minute
    later DuckDNS records the new address (a look at once): that is no
    second look five minutes later, the pinhole stays. The proxy is back
    at the five-minute look: still open, reachable."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=8443):
        await home.setup()
        with proxy_on(8443):
            assert (await home.open())["reason"] == "pinhole_added"
        with served_by(None):
            await home.later(61)
            dns = home.keeper.entry.runtime_data.dns
            assert dns.data is not None
            dns.async_set_updated_data(replace(dns.data, ipv6=LAN_HOST6_NEXT))
            await home.hass.async_block_till_done(wait_background_tasks=True)
            assert home.keeper.state.wanted == Pinhole(LOCATION6, LAN_HOST6, 8443)
        with proxy_on(8443):
            await home.later(6)
        assert home.keeper.state.wanted == Pinhole(LOCATION6, LAN_HOST6, 8443)
        assert home.keeper.state.confirmed
        assert await home.from_internet(port=8443) is Hairpin.REACHED_US


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


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_a_router_that_announces_its_unique_local_address(
    ipv6_home: Ipv6Home,
) -> None:
    """OpenWrt's miniupnpd started before the provider's prefix arrived
    announces its description at its unique local address: asked from our
    global address there, the router opens the pinhole all the same."""
    home = ipv6_home
    await home.router("boot_before_prefix")
    await home.router_at(LOCATION, LOCATION_ULA6)
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        await home.setup()
        assert (await home.open())["reason"] == "pinhole_added"
        assert await home.from_internet() is Hairpin.REACHED_US
        assert home.state() == "reachable"


def _moved(*locations: str) -> tuple[str, ...]:
    """The locations after the router's UPnP restarted on port 5001."""
    return tuple(where.replace(":5000/", ":5001/") for where in locations)


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
@pytest.mark.parametrize("kept_first", [False, True])
async def test_turned_off_after_the_routers_upnp_moved(
    ipv6_home: Ipv6Home, kept_first: bool
) -> None:
    """The router's UPnP restarts on another port (its firewall, and our
    pinhole, stay): the hourly keep follows it without closing the pinhole
    it keeps; turned off (before or after that keep), the pinhole is closed
    where the router answers now, not left open until its lease ends."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        entry = await home.setup()
        assert (await home.open())["reason"] == "pinhole_added"
        await home.router("stop")
        await home.router("start", replace(home.network.config, http_port=5001))
        assert await home.from_internet() is Hairpin.REACHED_US
        location, location6 = _moved(LOCATION, LOCATION6)
        await home.router_at(location, location6)
        await entry.runtime_data.remote_access.async_refresh()
        gateway = entry.runtime_data.remote_access.data.facts.gateway
        assert gateway is not None
        assert gateway.ipv6_location == location6
        if kept_first:
            await home.later(61)
            assert home.keeper.state == PinholeState(
                Pinhole(location6, LAN_HOST6, HA_PORT), confirmed=True, established=True
            )
            assert await home.from_internet() is Hairpin.REACHED_US
        closed = await home.submit(await home.step("pinhole_https_off"))
        assert closed["reason"] == "pinhole_closed", closed
        assert await home.from_internet() is Hairpin.NO_ANSWER


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_deleted_after_the_routers_upnp_moved(ipv6_home: Ipv6Home) -> None:
    """The router's UPnP restarts on another port (our pinhole stays in its
    firewall), then the entry is deleted: the pinhole is closed where SSDP
    last saw the router, not left open until its lease ends."""
    home = ipv6_home
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        entry = await home.setup()
        assert (await home.open())["reason"] == "pinhole_added"
        await home.router("stop")
        await home.router("start", replace(home.network.config, http_port=5001))
        await home.router_at(*_moved(LOCATION, LOCATION6))
        assert await home.hass.config_entries.async_remove(entry.entry_id)
        await home.hass.async_block_till_done(wait_background_tasks=True)
        assert await home.from_internet() is Hairpin.NO_ANSWER


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
@pytest.mark.parametrize("removed", [True, False])
async def test_the_old_entry_let_go_after_moving_to_a_new_name(
    ipv6_home: Ipv6Home, start_duckdns: StartDuckDns, tmp_path: Path, removed: bool
) -> None:
    """Moving to a new DuckDNS name: the new entry opens HTTPS over IPv6 (the
    same pinhole: this host's address, the port that serves), then the old
    entry is deleted, or its pinhole turned off (the screen says the other
    entry keeps it). The new entry's pinhole stays open."""
    home, hass = ipv6_home, ipv6_home.hass
    duckdns, url = await start_duckdns(None, ["myhome-new"])
    duckdns.detected_ipv4 = SHARED_IPV4
    cert, key = certs.issue(["myhome-new.duckdns.org"]).write(tmp_path / "new")
    new = mock_entry(
        {
            **managed_options(cert, key),
            CONF_IPV6_MODE: Ipv6Mode.FIXED,
            CONF_IPV6_ADDRESS: LAN_HOST6,
        },
        **{CONF_DUCKDNS_URL: url, CONF_DOMAINS: ["myhome-new.duckdns.org"]},
    )
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        old = await home.setup()
        assert (await home.open())["reason"] == "pinhole_added"
        await setup_integration(hass, new)
        await hass.async_block_till_done(wait_background_tasks=True)
        form = await options_step(hass, new.entry_id, "pinhole_https")
        assert (await home.submit(form, consent=True))["reason"] == "pinhole_added"
        if removed:
            assert await hass.config_entries.async_remove(old.entry_id)
        else:
            kept = await home.submit(await home.step("pinhole_https_off"))
            assert kept["reason"] == "pinhole_kept_by_another", kept
            assert kept["description_placeholders"]["entry"] == new.title
            assert home.keeper.state == PinholeState()
        await hass.async_block_till_done(wait_background_tasks=True)
        assert new.runtime_data.pinhole.state.confirmed
        assert await home.from_internet() is Hairpin.REACHED_US
        assert await hass.config_entries.async_unload(new.entry_id)


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_turned_on_again_before_the_pending_close_ran(
    ipv6_home: Ipv6Home,
) -> None:
    """Turned off while the router was away (the close pending at its unique
    local address), turned on again once it is back and found at its global
    one: the pending close must not delete the pinhole just opened (the
    router knows a pinhole by address and port, not by the URL asked)."""
    home = ipv6_home
    await home.router("boot_before_prefix")
    await home.router_at(LOCATION, LOCATION_ULA6)
    async with tls_server(home.issued, host=LAN_HOST6, port=HA_PORT):
        entry = await home.setup()
        assert (await home.open())["reason"] == "pinhole_added"
        await home.router("stop")
        pending = await home.submit(await home.step("pinhole_https_off"))
        assert pending["reason"] == "pinhole_close_pending", pending
        await home.router("start")
        await home.router_at(LOCATION, LOCATION6, LOCATION_ULA6)
        await entry.runtime_data.remote_access.async_refresh()
        assert (await home.open())["reason"] == "pinhole_added"
        assert home.keeper.state.wanted == Pinhole(LOCATION6, LAN_HOST6, HA_PORT)
        assert await home.from_internet() is Hairpin.REACHED_US


async def _search(
    source: tuple[str, int] | tuple[str, int, int, int],
    target: tuple[str, int] | tuple[str, int, int, int],
) -> list[CaseInsensitiveDict]:
    answers: list[CaseInsensitiveDict] = []

    async def found(headers: CaseInsensitiveDict) -> None:
        answers.append(headers)

    await async_search(
        found, timeout=2, search_target=IGD2, source=source, target=target
    )
    assert answers
    return answers


@pytest.mark.parametrize("ipv6_last", [False, True])
async def test_home_assistants_ssdp_cache_as_it_is(
    in_lan: HomeNetwork, hass: HomeAssistant, ipv6_last: bool
) -> None:
    """Home Assistant's SSDP keeps one set of headers per device and search
    target: the router's latest answer (over IPv4 or IPv6) hides the other
    description URL there (it stays among the device's locations). The
    router is found over IPv4 (its forwards, its WAN address) and over IPv6
    (its pinholes) whichever answered last."""
    index = socket.if_nametoindex("eth0")  # the test's thread is in the LAN
    link_local = await asyncio.to_thread(in_lan.lan_link_local)
    over_ipv6 = await _search((link_local, 0, 0, index), ("ff02::c", 1900, 0, index))
    over_ipv4 = await _search((LAN_HOST, 0), ("239.255.255.250", 1900))
    scanner = Scanner(hass, IntegrationMatchers())
    scanner._description_cache = DescriptionCache(
        AiohttpSessionRequester(async_get_clientsession(hass), True, 10)
    )
    answers = (*over_ipv4, *over_ipv6) if ipv6_last else (*over_ipv6, *over_ipv4)
    for headers in answers:
        scanner._device_tracker.see_search(headers)
    hass.data.setdefault(SSDP, {})[SSDP_SCANNER] = scanner
    hass.config.components.add("ssdp")

    udn = await router_udn(hass)
    assert (await remote_access.async_discover_gateways(hass) or [])[:1] == [LOCATION]
    assert await remote_access.async_discover_ipv6_gateways(hass, udn) == [LOCATION6]


async def test_a_refused_intent_after_a_restart_is_given_up(
    ipv6_home: Ipv6Home,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Home Assistant stopped while opening a pinhole to a proxy on 443;
    after the restart miniupnpd refuses it (below 1024): given up with one
    warning, the menu offers opening again, not asked every five minutes."""
    home = ipv6_home
    entry = home.make_entry()
    key = f"{DOMAIN}.pinhole_{entry.entry_id}"
    intent = PinholeState(Pinhole(LOCATION6, LAN_HOST6, 443))
    hass_storage[key] = {"version": 1, "key": key, "data": intent.as_dict()}
    with proxy_on(443):
        await home.setup()
        await home.later(6)
        assert home.keeper.state == PinholeState()
        menu = await home.hass.config_entries.options.async_init(entry.entry_id)
    assert "pinhole_https" in menu["menu_options"]
    gave_up = [r for r in caplog.records if "it is given up" in r.message]
    assert len(gave_up) == 1


async def test_nothing_is_opened_while_https_is_not_served(
    ipv6_home: Ipv6Home,
) -> None:
    """The managed certificate is served by nobody: the step says which
    safety condition is missing, nothing reaches the router."""
    await ipv6_home.setup()
    with served_by(None):
        refused = await ipv6_home.step("pinhole_https")
    assert refused["reason"] == "pinhole_not_safe"
    assert refused["description_placeholders"]["served"] == "✘"
    assert ipv6_home.keeper.state == PinholeState()
