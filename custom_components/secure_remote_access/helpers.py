"""Small Home Assistant helpers shared by the flows and the entry setup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import CONF_DUCKDNS_URL
from .protocol.duckdns import DEFAULT_UPDATE_URL, DuckDnsClient


def duckdns_client(hass: HomeAssistant, data: Mapping[str, Any]) -> DuckDnsClient:
    """Build a DuckDNS client on Home Assistant's shared session for entry data."""
    return DuckDnsClient(
        async_get_clientsession(hass),
        data[CONF_TOKEN],
        base_url=data.get(CONF_DUCKDNS_URL) or DEFAULT_UPDATE_URL,
    )
