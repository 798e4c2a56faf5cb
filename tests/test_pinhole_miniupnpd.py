"""HTTPS over IPv6 through a pinhole, through Home Assistant on Debian's
miniupnpd as the router: the way out of carrier-grade NAT.

Home Assistant runs on the home's LAN host (``in_lan``); Home Assistant's
SSDP cache holds the router at its IPv4 and its IPv6 address (one UDN), as
SSDP over both finds it. The internet connects from the provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
import socket
from typing import Any
from unittest.mock import patch

from async_upnp_client.aiohttp import AiohttpSessionRequester
from async_upnp_client.description_cache import DescriptionCache
from async_upnp_client.search import async_search
from async_upnp_client.utils import CaseInsensitiveDict
from homeassistant.components.ssdp.const import DOMAIN as SSDP, SSDP_SCANNER
from homeassistant.components.ssdp.scanner import IntegrationMatchers, Scanner
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.secure_remote_access import (
    pinhole_keeping,
    port_forward_flow,
    remote_access,
)
from custom_components.secure_remote_access.const import (
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_IPV6_ADDRESS,
    CONF_IPV6_MODE,
    DOMAIN,
    Ipv6Mode,
)
from custom_components.secure_remote_access.pinhole_state import Pinhole, PinholeState
from custom_components.secure_remote_access.protocol import upnp
from custom_components.secure_remote_access.protocol.remote_access import (
    Hairpin,
    hairpin_probe,
)
from custom_components.secure_remote_access.proxy import CertificateServer
from tests.fakes import certs
from tests.fakes.issuer import FakeCa
from tests.fakes.miniupnpd import (
    LAN_HOST,
    LAN_HOST6,
    LAN_HOST6_NEXT,
    LOCATION,
    LOCATION6,
    LOCATION_ULA6,
    OTHER_HOST6,
    HomeNetwork,
    NamespaceLoop,
    RouterConfig,
)
from tests.fakes.tls_server import tls_server
from tests.protocol.test_upnp_miniupnpd import _link_local

from .common import NAME, StartDuckDns, managed_options, mock_entry, setup_integration
from .lan import HA_PORT, SENSOR, on_the_lan, options_step, sensor_attributes

IGD2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
#: What DuckDNS saw as the home's IPv4 address: the provider's shared one.
SHARED_IPV4 = "81.2.69.200"


@contextmanager
def ssdp_sees(udn: str, *locations: str) -> Iterator[None]:
    """Home Assistant's SSDP cache: the router at ``locations`` (one UDN).

    As Home Assistant keeps it: one entry per device and search target,
    its latest answer's location (here the first) and every location.
    """
    infos = [
        SsdpServiceInfo(
            ssdp_usn=f"{udn}::{IGD2}",
            ssdp_st=IGD2,
            upnp={},
            ssdp_location=locations[0],
            ssdp_udn=udn,
            ssdp_all_locations=set(locations),
        )
    ]

    async def by_st(_hass: HomeAssistant, st: str) -> list[SsdpServiceInfo]:
        return infos if st == IGD2 else []

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(
            "homeassistant.components.ssdp.async_get_discovery_info_by_st", by_st
        )
        yield


async def _router_udn(hass: HomeAssistant) -> str:
    udn = await upnp.gateway_udn(
        async_get_clientsession(hass), LOCATION, timeout_seconds=10
    )
    assert udn is not None
    return udn


async def _from_internet(
    provider: NamespaceLoop, ours: frozenset[str], address: str = LAN_HOST6
) -> Hairpin:
    """A TLS handshake from the provider to ``address`` (2 s: dropped)."""
    return await provider.run(
        hairpin_probe(address, [HA_PORT], NAME, ours, timeout_seconds=2)
    )


def _state(hass: HomeAssistant) -> str:
    state = hass.states.get(SENSOR)
    assert state is not None
    return state.state


def _ipv6_entry(url: str, tmp_path: Path, address: str = LAN_HOST6) -> tuple:  # type: ignore[type-arg]
    issued = certs.issue([NAME])
    cert, key = issued.write(tmp_path)
    options = managed_options(
        cert,
        key,
        **{CONF_IPV6_MODE: Ipv6Mode.FIXED, CONF_IPV6_ADDRESS: address},
    )
    return issued, mock_entry(options, **{CONF_DUCKDNS_URL: url})


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_https_over_ipv6_behind_carrier_grade_nat(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """Behind CGNAT with IPv6: the pinhole is opened on consent, reaches us
    from the internet, turns the sensor reachable, is opened again after a
    router reboot and closed when turned off."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, entry = _ipv6_entry(url, tmp_path)
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    hass.config.components.add("ssdp")
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        async with tls_server(issued, host=LAN_HOST6, port=HA_PORT):
            await setup_integration(hass, entry)
            await hass.async_block_till_done(wait_background_tasks=True)
            # miniupnpd hides a shared WAN address: the IPv4 side is unknown.
            assert _state(hass) == "unknown"
            assert sensor_attributes(hass)["reason"] == "wan_address_hidden"
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER

            form = await options_step(hass, entry.entry_id, "pinhole_https")
            assert form["type"] is FlowResultType.FORM, form
            assert form["description_placeholders"]["address"] == LAN_HOST6
            assert form["description_placeholders"]["url"] == f"https://{NAME}:8123"
            options = hass.config_entries.options
            unticked = await options.async_configure(
                form["flow_id"], {"consent": False}
            )
            assert unticked["errors"] == {"consent": "forward_consent_required"}
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER
            done = await options.async_configure(form["flow_id"], {"consent": True})
            assert done["reason"] == "pinhole_added", done
            await hass.async_block_till_done(wait_background_tasks=True)
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US
            assert _state(hass) == "reachable"
            assert sensor_attributes(hass)["ipv6_pinhole_port"] == HA_PORT

            await asyncio.to_thread(in_lan.reboot)
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER
            async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=61))
            await hass.async_block_till_done(wait_background_tasks=True)
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US

            stop = await options_step(hass, entry.entry_id, "pinhole_https_off")
            closed = await options.async_configure(stop["flow_id"], {})
            assert closed["reason"] == "pinhole_closed", closed
            await hass.async_block_till_done(wait_background_tasks=True)
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER
            assert _state(hass) == "unknown"
            assert "ipv6_pinhole_port" not in sensor_attributes(hass)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ipv6_of_another_device_is_never_opened(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """DuckDNS holds the IPv6 address of another LAN host: the step refuses
    to open anything and names the address."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    _issued, entry = _ipv6_entry(url, tmp_path, OTHER_HOST6)
    hass.config.components.add("ssdp")
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        await setup_integration(hass, entry)
        await hass.async_block_till_done(wait_background_tasks=True)
        refused = await options_step(hass, entry.entry_id, "pinhole_https")
        assert refused["reason"] == "pinhole_not_this_host"
        assert refused["description_placeholders"] == {"address": OTHER_HOST6}
        assert entry.runtime_data.pinhole.state.wanted is None
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("router_config", [RouterConfig(igd_v1=True)])
async def test_a_router_without_pinholes_says_so(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """miniupnpd as a true IGDv1 offers no WANIPv6FirewallControl: the step
    says what to allow by hand in the router's IPv6 firewall."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    _issued, entry = _ipv6_entry(url, tmp_path)
    hass.config.components.add("ssdp")
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        await setup_integration(hass, entry)
        await hass.async_block_till_done(wait_background_tasks=True)
        refused = await options_step(hass, entry.entry_id, "pinhole_https")
        assert refused["reason"] == "pinhole_no_service", refused
        assert refused["description_placeholders"]["address"] == LAN_HOST6
        assert refused["description_placeholders"]["port"] == str(HA_PORT)
        assert await hass.config_entries.async_unload(entry.entry_id)


@contextmanager
def proxy_on(port: int) -> Iterator[None]:
    """The managed certificate is served by a proxy add-on on ``port``."""

    async def who(*_args: Any) -> CertificateServer:
        return CertificateServer("NGINX Home Assistant SSL proxy", port)

    with (
        patch.object(port_forward_flow, "async_who_serves_managed", who),
        patch.object(pinhole_keeping, "async_who_serves_managed", who),
    ):
        yield


async def _set_up(
    hass: HomeAssistant, network: HomeNetwork, entry: MockConfigEntry
) -> None:
    hass.config.components.add("ssdp")
    await setup_integration(hass, entry)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_pinholes_the_router_refuses_or_loses(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """A proxy on 443: miniupnpd refuses pinholes below 1024 (the form says
    so, nothing is kept). The router gone mid-change: the form says it did
    not answer, and what it may have opened is closed once it answers."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    _issued, entry = _ipv6_entry(url, tmp_path)
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        await _set_up(hass, in_lan, entry)
        keeper = entry.runtime_data.pinhole
        options = hass.config_entries.options
        with proxy_on(443):
            form = await options_step(hass, entry.entry_id, "pinhole_https")
            refused = await options.async_configure(form["flow_id"], {"consent": True})
        assert refused["errors"] == {"base": "pinhole_not_authorized"}
        assert keeper.state == PinholeState()

        form = await options_step(hass, entry.entry_id, "pinhole_https")
        await asyncio.to_thread(in_lan.stop)
        gone = await options.async_configure(form["flow_id"], {"consent": True})
        assert gone["errors"] == {"base": "pinhole_router_unreachable"}
        assert keeper.state.wanted is None
        assert [c.pinhole.port for c in keeper.state.closing] == [HA_PORT]
        await asyncio.to_thread(in_lan.start)
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=6))
        await hass.async_block_till_done(wait_background_tasks=True)
        assert keeper.state == PinholeState()
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_restart_mid_open_and_a_new_address_and_removal(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """Home Assistant stopped after storing the intent: the pinhole is opened
    at start. The provider gives a new prefix (DuckDNS now holds the new
    address): the pinhole moves there, the old one is closed. Deleting the
    entry closes it."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, entry = _ipv6_entry(url, tmp_path)
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    intent = PinholeState(Pinhole(LOCATION6, LAN_HOST6, HA_PORT))
    hass_storage[f"{DOMAIN}.pinhole_{entry.entry_id}"] = {
        "version": 1,
        "key": f"{DOMAIN}.pinhole_{entry.entry_id}",
        "data": intent.as_dict(),
    }
    new_address = LAN_HOST6_NEXT
    await asyncio.to_thread(
        in_lan.lan.exec, "ip", "addr", "add", f"{new_address}/64", "dev", "eth0",
        "nodad",
    )  # fmt: skip
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        async with (
            tls_server(issued, host=LAN_HOST6, port=HA_PORT),
            tls_server(issued, host=new_address, port=HA_PORT),
        ):
            await _set_up(hass, in_lan, entry)
            assert entry.runtime_data.pinhole.state.confirmed
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US
            assert _state(hass) == "reachable"

            hass.config_entries.async_update_entry(
                entry,
                options={**entry.options, CONF_IPV6_ADDRESS: new_address},
            )
            assert await hass.config_entries.async_reload(entry.entry_id)
            await hass.async_block_till_done(wait_background_tasks=True)
            assert entry.runtime_data.pinhole.state.wanted == Pinhole(
                LOCATION6, new_address, HA_PORT
            )
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER
            assert (
                await _from_internet(provider, ours, new_address) is Hairpin.REACHED_US
            )
            assert _state(hass) == "reachable"

            assert await hass.config_entries.async_remove(entry.entry_id)
            await hass.async_block_till_done(wait_background_tasks=True)
            assert (
                await _from_internet(provider, ours, new_address) is Hairpin.NO_ANSWER
            )
    assert f"{DOMAIN}.pinhole_{entry.entry_id}" not in hass_storage


async def test_the_pinhole_closes_when_https_is_no_longer_served(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """Home Assistant stops serving the managed certificate (plain HTTP on
    the same port): the next look closes the pinhole on the router."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, entry = _ipv6_entry(url, tmp_path)
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)

    async def nobody(*_args: Any) -> None:
        return None

    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        async with tls_server(issued, host=LAN_HOST6, port=HA_PORT):
            await _set_up(hass, in_lan, entry)
            form = await options_step(hass, entry.entry_id, "pinhole_https")
            options = hass.config_entries.options
            done = await options.async_configure(form["flow_id"], {"consent": True})
            assert done["reason"] == "pinhole_added"
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US
            with patch.object(pinhole_keeping, "async_who_serves_managed", nobody):
                async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=61))
                await hass.async_block_till_done(wait_background_tasks=True)
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER
            assert entry.runtime_data.pinhole.state == PinholeState()
            assert "ipv6_pinhole_port" not in sensor_attributes(hass)
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_a_router_that_announces_its_unique_local_address(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """OpenWrt's miniupnpd started before the provider's prefix arrived
    announces its description at its unique local address: asked from our
    global address there, the router opens the pinhole all the same."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, entry = _ipv6_entry(url, tmp_path)
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    await asyncio.to_thread(in_lan.boot_before_prefix)
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION_ULA6),
    ):
        async with tls_server(issued, host=LAN_HOST6, port=HA_PORT):
            await _set_up(hass, in_lan, entry)
            form = await options_step(hass, entry.entry_id, "pinhole_https")
            assert form["type"] is FlowResultType.FORM, form
            options = hass.config_entries.options
            done = await options.async_configure(form["flow_id"], {"consent": True})
            assert done["reason"] == "pinhole_added", done
            await hass.async_block_till_done(wait_background_tasks=True)
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US
            assert _state(hass) == "reachable"
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
@pytest.mark.parametrize("kept_first", [False, True])
async def test_turned_off_after_the_routers_upnp_moved(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
    kept_first: bool,
) -> None:
    """The router's UPnP restarts on another port (its firewall, and our
    pinhole, stay): the hourly keep follows it without closing the pinhole
    it keeps; turned off (before or after that keep), the pinhole is closed
    where the router answers now, not left open until its lease ends."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, entry = _ipv6_entry(url, tmp_path)
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        async with tls_server(issued, host=LAN_HOST6, port=HA_PORT):
            await _set_up(hass, in_lan, entry)
            form = await options_step(hass, entry.entry_id, "pinhole_https")
            options = hass.config_entries.options
            done = await options.async_configure(form["flow_id"], {"consent": True})
            assert done["reason"] == "pinhole_added", done
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US

            await asyncio.to_thread(in_lan.stop)
            moved = replace(in_lan.config, http_port=5001)
            await asyncio.to_thread(in_lan.start, moved)
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US
            location, location6 = (
                where.replace(":5000/", ":5001/") for where in (LOCATION, LOCATION6)
            )
            with ssdp_sees(
                await upnp.gateway_udn(
                    async_get_clientsession(hass), location, timeout_seconds=10
                )
                or "",
                location,
                location6,
            ):
                await entry.runtime_data.remote_access.async_refresh()
                result = entry.runtime_data.remote_access.data
                assert result.facts.gateway is not None
                assert result.facts.gateway.ipv6_location == location6
                if kept_first:
                    keeper = entry.runtime_data.pinhole
                    async_fire_time_changed(
                        hass, dt_util.utcnow() + timedelta(minutes=61)
                    )
                    await hass.async_block_till_done(wait_background_tasks=True)
                    assert keeper.state == PinholeState(
                        Pinhole(location6, LAN_HOST6, HA_PORT), confirmed=True
                    )
                    assert await _from_internet(provider, ours) is Hairpin.REACHED_US

                stop = await options_step(hass, entry.entry_id, "pinhole_https_off")
                closed = await options.async_configure(stop["flow_id"], {})
            assert closed["reason"] == "pinhole_closed", closed
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
@pytest.mark.parametrize("removed", [True, False])
async def test_the_old_entry_let_go_after_moving_to_a_new_name(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
    removed: bool,
) -> None:
    """Moving to a new DuckDNS name: the new entry opens HTTPS over IPv6 (the
    same pinhole: this host's address, the port that serves), then the old
    entry is deleted, or its pinhole turned off (the screen says the other
    entry keeps it). The new entry's pinhole stays open."""
    duckdns, url = await start_duckdns(None, ["myhome", "myhome-new"])
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, old = _ipv6_entry(url, tmp_path / "old")
    cert, key = certs.issue(["myhome-new.duckdns.org"]).write(tmp_path / "new")
    new = mock_entry(
        managed_options(
            cert, key, **{CONF_IPV6_MODE: Ipv6Mode.FIXED, CONF_IPV6_ADDRESS: LAN_HOST6}
        ),
        **{CONF_DUCKDNS_URL: url, CONF_DOMAINS: ["myhome-new.duckdns.org"]},
    )
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        async with tls_server(issued, host=LAN_HOST6, port=HA_PORT):
            await _set_up(hass, in_lan, old)
            await _set_up(hass, in_lan, new)
            options = hass.config_entries.options
            for entry in (old, new):
                form = await options_step(hass, entry.entry_id, "pinhole_https")
                done = await options.async_configure(form["flow_id"], {"consent": True})
                assert done["reason"] == "pinhole_added", done
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US

            if removed:
                assert await hass.config_entries.async_remove(old.entry_id)
            else:
                stop = await options_step(hass, old.entry_id, "pinhole_https_off")
                kept = await options.async_configure(stop["flow_id"], {})
                assert kept["reason"] == "pinhole_kept_by_another", kept
                assert kept["description_placeholders"]["entry"] == new.title
                assert old.runtime_data.pinhole.state == PinholeState()
            await hass.async_block_till_done(wait_background_tasks=True)
            assert new.runtime_data.pinhole.state.confirmed
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US
        assert await hass.config_entries.async_unload(new.entry_id)
        if not removed:
            assert await hass.config_entries.async_unload(old.entry_id)


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_deleted_after_the_routers_upnp_moved(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """The router's UPnP restarts on another port (our pinhole stays in its
    firewall), then the entry is deleted: the pinhole is closed where SSDP
    last saw the router, not left open until its lease ends."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, entry = _ipv6_entry(url, tmp_path)
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    with (
        on_the_lan(in_lan),
        ssdp_sees(await _router_udn(hass), LOCATION, LOCATION6),
    ):
        async with tls_server(issued, host=LAN_HOST6, port=HA_PORT):
            await _set_up(hass, in_lan, entry)
            form = await options_step(hass, entry.entry_id, "pinhole_https")
            options = hass.config_entries.options
            done = await options.async_configure(form["flow_id"], {"consent": True})
            assert done["reason"] == "pinhole_added", done

            await asyncio.to_thread(in_lan.stop)
            moved = replace(in_lan.config, http_port=5001)
            await asyncio.to_thread(in_lan.start, moved)
            location, location6 = (
                where.replace(":5000/", ":5001/") for where in (LOCATION, LOCATION6)
            )
            udn = await upnp.gateway_udn(
                async_get_clientsession(hass), location, timeout_seconds=10
            )
            with ssdp_sees(udn or "", location, location6):
                assert await hass.config_entries.async_remove(entry.entry_id)
                await hass.async_block_till_done(wait_background_tasks=True)
            assert await _from_internet(provider, ours) is Hairpin.NO_ANSWER


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_turned_on_again_before_the_pending_close_ran(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """Turned off while the router was away (the close pending at its unique
    local address), turned on again once it is back and found at its global
    one: the pending close must not delete the pinhole just opened (the
    router knows a pinhole by address and port, not by the URL asked)."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    issued, entry = _ipv6_entry(url, tmp_path)
    ours = frozenset({issued.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    await asyncio.to_thread(in_lan.boot_before_prefix)
    udn = await _router_udn(hass)
    with on_the_lan(in_lan), ssdp_sees(udn, LOCATION, LOCATION_ULA6):
        async with tls_server(issued, host=LAN_HOST6, port=HA_PORT):
            await _set_up(hass, in_lan, entry)
            keeper = entry.runtime_data.pinhole
            options = hass.config_entries.options
            form = await options_step(hass, entry.entry_id, "pinhole_https")
            done = await options.async_configure(form["flow_id"], {"consent": True})
            assert done["reason"] == "pinhole_added", done

            await asyncio.to_thread(in_lan.stop)
            stop = await options_step(hass, entry.entry_id, "pinhole_https_off")
            pending = await options.async_configure(stop["flow_id"], {})
            assert pending["reason"] == "pinhole_close_pending", pending
            await asyncio.to_thread(in_lan.start)
            udn = await _router_udn(hass)  # a new one at each start
            with ssdp_sees(udn, LOCATION, LOCATION6, LOCATION_ULA6):
                await entry.runtime_data.remote_access.async_refresh()
                form = await options_step(hass, entry.entry_id, "pinhole_https")
                assert form["type"] is FlowResultType.FORM, form
                done = await options.async_configure(form["flow_id"], {"consent": True})
            assert done["reason"] == "pinhole_added", done
            assert keeper.state.wanted == Pinhole(LOCATION6, LAN_HOST6, HA_PORT)
            assert await _from_internet(provider, ours) is Hairpin.REACHED_US
        assert await hass.config_entries.async_unload(entry.entry_id)


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
    link_local = await asyncio.to_thread(_link_local, in_lan)
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

    udn = await _router_udn(hass)
    assert (await remote_access.async_discover_gateways(hass) or [])[:1] == [LOCATION]
    assert await remote_access.async_discover_ipv6_gateways(hass, udn) == [LOCATION6]
