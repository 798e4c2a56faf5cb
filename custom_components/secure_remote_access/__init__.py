"""Secure Remote Access: DuckDNS, Let's Encrypt certificates and a security checklist."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.typing import ConfigType

from .checklist.issues import async_delete_checklist_issues
from .checklist.runner import async_get_runner
from .const import DOMAIN
from .coordinator import DnsCoordinator
from .helpers import duckdns_client
from .models import RuntimeData, SecureRemoteAccessConfigEntry
from .repairs import async_check_duplicate_updater
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions."""
    async_setup_services(hass)
    return True


async def async_setup_entry(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> bool:
    """Set up a DuckDNS account from a config entry."""
    client = duckdns_client(hass, entry.data)
    dns = DnsCoordinator(hass, entry, client)
    await dns.async_config_entry_first_refresh()
    entry.runtime_data = RuntimeData(duckdns=client, dns=dns)

    async_check_duplicate_updater(hass, entry)
    entry.async_on_unload(
        dns.async_add_listener(lambda: async_check_duplicate_updater(hass, entry))
    )
    checklist = async_get_runner(hass)
    checklist.async_add_entry(entry)
    entry.async_on_unload(lambda: checklist.async_remove_entry(entry))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> bool:
    """Unload a config entry."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """Forget the entry's Repairs issues when it is deleted.

    The checklist's issues belong to the installation: they go with the last entry.
    """
    ir.async_delete_issue(hass, DOMAIN, f"duplicate_duckdns_updater_{entry.entry_id}")
    if not hass.config_entries.async_entries(DOMAIN):
        async_delete_checklist_issues(hass)
