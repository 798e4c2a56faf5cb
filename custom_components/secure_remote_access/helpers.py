"""Small Home Assistant helpers shared by the flows and the entry setup."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import CONF_DUCKDNS_URL, SECTION_TESTING
from .protocol.duckdns import DEFAULT_UPDATE_URL, DuckDnsClient


def duckdns_client(hass: HomeAssistant, data: Mapping[str, Any]) -> DuckDnsClient:
    """Build a DuckDNS client on Home Assistant's shared session for entry data."""
    return DuckDnsClient(
        async_get_clientsession(hass),
        data[CONF_TOKEN],
        base_url=data.get(CONF_DUCKDNS_URL) or DEFAULT_UPDATE_URL,
    )


def flatten_sections(values: Mapping[str, Any]) -> dict[str, Any]:
    """Form input with the fields of its collapsed testing section at top level."""
    flat = {k: v for k, v in values.items() if k != SECTION_TESTING}
    flat.update(values.get(SECTION_TESTING) or {})
    return flat


SSL_DIR = Path("/ssl")


def path_is_allowed(hass: HomeAssistant, path: str) -> bool:
    """True for absolute paths in the config directory, /ssl or an allowlisted dir.

    Blocking (resolves symbolic links): run it in the executor.
    """
    candidate = Path(path)
    if not candidate.is_absolute():
        return False
    try:
        resolved = (candidate if candidate.exists() else candidate.parent).resolve()
    except OSError, RuntimeError:
        return False
    roots = (Path(hass.config.config_dir).resolve(), SSL_DIR)
    if any(resolved.is_relative_to(root) for root in roots):
        return True
    return hass.config.is_allowed_path(path)


def default_certificate_dir(hass: HomeAssistant) -> Path:
    """/ssl where it exists (Home Assistant OS), else ssl/ in the config directory.

    Blocking (checks the file system): run it in the executor.
    """
    if SSL_DIR.is_dir():
        return SSL_DIR
    return Path(hass.config.path("ssl"))
