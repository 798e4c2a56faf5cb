"""Home Assistant on the LAN host of the miniupnpd test bed (tests/fakes/miniupnpd.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant

from custom_components.secure_remote_access import port_forward_flow, router_keeping
from custom_components.secure_remote_access.protocol import upnp
from custom_components.secure_remote_access.proxy import CertificateServer
from tests.fakes.miniupnpd import HomeNetwork

SENSOR = "sensor.myhome_duckdns_org_remote_access"
HA_PORT = 8123


@contextmanager
def on_the_lan(network: HomeNetwork) -> Iterator[None]:
    """Home Assistant serves the managed pair on 8123; executor jobs that ask
    which address leads to the router ask from the LAN host."""
    original = upnp.local_address_towards

    def towards(location: str) -> str | None:
        with network.lan.entered():
            return original(location)

    async def who(*_args: Any) -> CertificateServer:
        return CertificateServer("Home Assistant", HA_PORT)

    with (
        patch.object(upnp, "local_address_towards", towards),
        patch.object(port_forward_flow, "async_who_serves_managed", who),
        patch.object(router_keeping, "async_who_serves_managed", who),
    ):
        yield


async def options_step(hass: HomeAssistant, entry_id: str, step: str) -> dict[str, Any]:
    """Open the entry's options and pick ``step`` from its menu."""
    menu = await hass.config_entries.options.async_init(entry_id)
    return dict(
        await hass.config_entries.options.async_configure(
            menu["flow_id"], {"next_step_id": step}
        )
    )


def sensor_attributes(hass: HomeAssistant) -> dict[str, Any]:
    """The Remote access sensor's attributes."""
    state = hass.states.get(SENSOR)
    assert state is not None
    return dict(state.attributes)
