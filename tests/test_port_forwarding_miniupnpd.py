"""Forwarding HTTPS, and removing what should not be forwarded, through Home
Assistant on Debian's miniupnpd as the router.

Home Assistant runs on the home's LAN host (``in_lan``: the test's thread,
and with it the event loop, is inside the LAN namespace; the DuckDNS
stand-in is started there too). The router's own list is read with
miniupnpc from another LAN host; the internet connects from the provider.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from homeassistant.components.repairs import DOMAIN as REPAIRS
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.secure_remote_access.const import (
    CONF_DUCKDNS_URL,
    CONF_UPNP_LOCATION,
    DOMAIN,
)
from custom_components.secure_remote_access.port_forward_state import (
    mapping_description,
)
from custom_components.secure_remote_access.protocol.remote_access import (
    Hairpin,
    hairpin_probe,
)
from tests.fakes import certs
from tests.fakes.issuer import FakeCa
from tests.fakes.miniupnpd import (
    LAN_HOST,
    LOCATION,
    OTHER_HOST,
    WAN_ADDRESS,
    HomeNetwork,
    RouterMapping,
)
from tests.fakes.tls_server import tls_server

from .common import NAME, StartDuckDns, managed_options, mock_entry, setup_integration
from .lan import HA_PORT, SENSOR, on_the_lan, options_step, sensor_attributes


async def test_forward_https_on_miniupnpd(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """443 is refused by the router's rules (606): the port field says so;
    8443 is added, listed by the router, reached from the internet, kept
    after a reboot that forgot it, and removed when forwarding stops."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = WAN_ADDRESS
    issued = certs.issue([NAME])
    cert, key = issued.write(tmp_path)
    entry = mock_entry(
        managed_options(cert, key),
        **{CONF_DUCKDNS_URL: url, CONF_UPNP_LOCATION: LOCATION},
    )
    ours = RouterMapping(
        8443, "TCP", LAN_HOST, HA_PORT, mapping_description(entry.entry_id), 0
    )
    provider = in_lan.loop(in_lan.provider)
    with on_the_lan(in_lan):
        async with tls_server(issued, host=LAN_HOST, port=HA_PORT):
            await setup_integration(hass, entry)
            await hass.async_block_till_done(wait_background_tasks=True)
            form = await options_step(hass, entry.entry_id, "forward_https")
            assert form["type"] is FlowResultType.FORM, form
            assert form["description_placeholders"]["internal"] == (
                f"{LAN_HOST}:{HA_PORT}"
            )
            options = hass.config_entries.options
            refused = await options.async_configure(
                form["flow_id"], {"external_port": 443, "consent": True}
            )
            assert refused["errors"] == {"external_port": "forward_not_authorized"}
            done = await options.async_configure(
                form["flow_id"], {"external_port": 8443, "consent": True}
            )
            assert done["reason"] == "forward_added"
            assert await asyncio.to_thread(in_lan.mappings) == [ours]
            assert sensor_attributes(hass)["forwarded_https_port"] == 8443
            assert hass.states.get(SENSOR).state == "reachable"  # type: ignore[union-attr]
            fingerprints = frozenset({issued.fingerprint_sha256})
            from_internet = await provider.run(
                hairpin_probe(WAN_ADDRESS, [8443], NAME, fingerprints)
            )
            assert from_internet is Hairpin.REACHED_US

            await asyncio.to_thread(in_lan.reboot)
            assert await asyncio.to_thread(in_lan.mappings) == []
            async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=31))
            await hass.async_block_till_done(wait_background_tasks=True)
            assert await asyncio.to_thread(in_lan.mappings) == [ours]

            stop = await options_step(hass, entry.entry_id, "forward_https_off")
            removed = await options.async_configure(stop["flow_id"], {})
            assert removed["reason"] == "forward_removed"
            assert await asyncio.to_thread(in_lan.mappings) == []
            assert "forwarded_https_port" not in sensor_attributes(hass)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_remove_this_forward_on_miniupnpd(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
) -> None:
    """Plain HTTP forwarded to this host (and a port of another host's): the
    fix deletes ours on the router, the other host's stays, the issue goes."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = WAN_ADDRESS
    await asyncio.to_thread(in_lan.add_mapping, "lan", 8123, HA_PORT, "manual")
    await asyncio.to_thread(in_lan.add_mapping, "other", 9000, HA_PORT, "nas")
    entry = mock_entry(None, **{CONF_DUCKDNS_URL: url, CONF_UPNP_LOCATION: LOCATION})
    with on_the_lan(in_lan):
        await setup_integration(hass, entry)
        await hass.async_block_till_done(wait_background_tasks=True)
        issue_id = f"plain_http_forwarded_{entry.entry_id}"
        assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
        await async_setup_component(hass, REPAIRS, {})
        flows = hass.data[REPAIRS]["flow_manager"]
        menu = await flows.async_init(DOMAIN, data={"issue_id": issue_id})
        done = await flows.async_configure(
            menu["flow_id"], {"next_step_id": "remove_forward"}
        )
        assert done["type"] is FlowResultType.CREATE_ENTRY
        assert [
            (m.external_port, m.internal_client)
            for m in await asyncio.to_thread(in_lan.mappings)
        ] == [(9000, OTHER_HOST)]
        assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
        assert await hass.config_entries.async_unload(entry.entry_id)
