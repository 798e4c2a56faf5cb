"""Secure Remote Access: DuckDNS, Let's Encrypt certificates and a security checklist."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import CONF_DOMAINS, DOMAIN
from .helpers import duckdns_client
from .models import RuntimeData, SecureRemoteAccessConfigEntry
from .protocol.duckdns import DuckDnsAuthError, DuckDnsError

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the integration (actions are registered here once they exist)."""
    return True


async def async_setup_entry(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> bool:
    """Set up a DuckDNS account from a config entry."""
    client = duckdns_client(hass, entry.data)
    domains: list[str] = list(entry.data[CONF_DOMAINS])
    try:
        await client.update(domains)
    except DuckDnsAuthError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except DuckDnsError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err
    entry.runtime_data = RuntimeData(duckdns=client, domains=domains)
    return True


async def async_unload_entry(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> bool:
    """Unload a config entry."""
    return True
