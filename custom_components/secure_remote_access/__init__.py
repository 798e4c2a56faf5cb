"""Secure Remote Access: DuckDNS, Let's Encrypt certificates and a security checklist."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.typing import ConfigType

from .certificate import CertificateManager, CertificateSettings
from .const import CONF_DOMAINS, DOMAIN
from .coordinator import DnsCoordinator
from .helpers import duckdns_client
from .models import RuntimeData, SecureRemoteAccessConfigEntry
from .renewal import (
    RenewalScheduler,
    async_remove_renewal_state,
    renewal_failed_issue_id,
)
from .repairs import async_check_duplicate_updater
from .rotation import async_watch_served_certificate, restart_issue_id
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
    domains: list[str] = list(entry.data[CONF_DOMAINS])
    settings = CertificateSettings.from_options(domains, entry.options)
    manager = None
    renewal = None
    if settings is not None:
        manager = CertificateManager(hass, entry.entry_id, settings, client, domains)
        await manager.async_recover()
        renewal = RenewalScheduler(hass, entry.entry_id, manager)
        await renewal.async_start()
        entry.async_on_unload(renewal.async_stop)
    entry.runtime_data = RuntimeData(
        duckdns=client, dns=dns, certificate=manager, renewal=renewal
    )
    entry.async_on_unload(async_watch_served_certificate(hass, entry.entry_id))

    async_check_duplicate_updater(hass, entry)
    entry.async_on_unload(
        dns.async_add_listener(lambda: async_check_duplicate_updater(hass, entry))
    )
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
    """Forget the entry's Repairs issues when it is deleted."""
    ir.async_delete_issue(hass, DOMAIN, f"duplicate_duckdns_updater_{entry.entry_id}")
    ir.async_delete_issue(hass, DOMAIN, renewal_failed_issue_id(entry.entry_id))
    ir.async_delete_issue(hass, DOMAIN, restart_issue_id(entry.entry_id))
    await async_remove_renewal_state(hass, entry.entry_id)
