"""Secure Remote Access: DuckDNS, Let's Encrypt certificates and a security checklist."""

from __future__ import annotations

from functools import partial

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
from homeassistant.helpers.typing import ConfigType

from .certificate import CertificateManager
from .certificate_issues import async_sync_certificate_issues
from .certificate_settings import CertificateSettings
from .checklist.runner import async_get_runner
from .const import CONF_DOMAINS, CONF_ENDPOINTS, DOMAIN
from .coordinator import (
    DnsCoordinator,
    EndpointMonitor,
    LocalCertificateMonitor,
    async_local_sources,
)
from .entity import endpoint_device_identifier
from .helpers import duckdns_client, endpoints_from_options
from .https_trial import async_forget_trial, async_setup_https_trial, get_https_trial
from .https_unmanaged import async_check_unmanaged, async_warn_unmanaged
from .issues import (
    async_check_duplicate_updater,
    async_delete_delegation_issue,
    async_delete_entry_issues,
    async_delete_installation_issues,
    async_delete_persist_record_left,
    async_delete_renewal_failed_issue,
    async_raise_persist_record_left,
)
from .models import ManagedCertificate, RuntimeData, SecureRemoteAccessConfigEntry
from .persist_record import PersistRecords, PersistRefusals
from .pinhole_keeping import PinholeKeeper, async_remove_pinholes
from .port_forwarding import PortForwardKeeper, async_remove_forwards
from .proxy_restart import async_setup_proxy_restart
from .remote_access import RemoteAccessCoordinator
from .remote_access_memory import RemoteAccessMemory
from .renewal import RenewalCoordinator, RenewalOutcome
from .renewal_state import async_remove_renewal_state
from .sensor import RENEWAL_SENSORS
from .served import served_certificate
from .services import async_setup_services
from .status import CertificateKind

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions; follow a change of the http config."""
    async_setup_services(hass)
    # Serving HTTPS (issue 28): checked whatever the state of the entries.
    async_setup_https_trial(hass)
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
    managed = None
    if settings is None:
        # Nothing is renewed any more: left-over issues would never clear, and
        # a certificate kept for writing holds a private key.
        async_delete_renewal_failed_issue(hass, entry.entry_id)
        async_delete_delegation_issue(hass, entry.entry_id)
        await async_remove_renewal_state(hass, entry.entry_id)
        # Nor is a change of the http config to serve it still ours to keep
        # (at start-up, the check once Home Assistant has started sees to it).
        if hass.is_running:
            await get_https_trial(hass).async_resolve()
    elif not settings.extra_names:
        async_delete_delegation_issue(hass, entry.entry_id)
    async_delete_persist_record_left(hass, domains)
    persist_records = PersistRecords(hass, entry.entry_id)
    await _async_release_persist_records(hass, entry, persist_records, settings)
    if settings is not None:
        manager = CertificateManager(
            hass, entry.entry_id, settings, client, domains, persist_records
        )
        await manager.async_recover()
        managed = ManagedCertificate(manager, RenewalCoordinator(hass, entry, manager))
        await managed.renewal.async_load()
        entry.async_on_unload(managed.renewal.async_stop)
    certificates = LocalCertificateMonitor(
        hass,
        entry,
        await async_local_sources(hass, managed.manager if managed else None),
    )
    # Never fails the entry: a broken file is an observation, a bug a log line.
    await certificates.async_refresh()
    endpoints = EndpointMonitor(hass, entry, endpoints_from_options(entry.options))
    remote = RemoteAccessCoordinator(hass, entry, dns)
    port_forward = PortForwardKeeper(hass, entry, remote.async_refresh)
    await port_forward.async_load()
    pinhole = PinholeKeeper(hass, entry, remote.async_refresh)
    await pinhole.async_load()
    entry.runtime_data = RuntimeData(
        duckdns=client,
        dns=dns,
        certificates=certificates,
        endpoints=endpoints,
        managed=managed,
        remote_access=remote,
        port_forward=port_forward,
        pinhole=pinhole,
    )
    entry.async_on_unload(served_certificate(hass).async_add_user())
    # Serving HTTPS: the entry renews a served pair again.
    await async_check_unmanaged(hass)

    async_check_duplicate_updater(hass, entry)
    entry.async_on_unload(
        dns.async_add_listener(lambda: async_check_duplicate_updater(hass, entry))
    )
    _async_setup_monitoring(hass, entry)
    # A proxy add-on in front: restarted after renewals when the user chose so.
    if (unsub := async_setup_proxy_restart(hass, entry)) is not None:
        entry.async_on_unload(unsub)
    checklist = async_get_runner(hass)
    if settings is not None:
        # The checklist also audits the permissions of the key we write.
        entry.async_on_unload(
            checklist.async_add_key_file(str(settings.private_key_path))
        )
    checklist.async_add_entry(entry)
    entry.async_on_unload(lambda: checklist.async_remove_entry(entry))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if managed is not None:
        # Once everything listens: the first check may order at once.
        managed.renewal.async_start()
    # UPnP queries and handshakes take seconds: the first check runs after setup.
    entry.runtime_data.remote_access.async_start()
    # The HTTPS forward on the router: kept, or removed when no longer wanted.
    port_forward.async_start()
    pinhole.async_start()
    if endpoints.sources:
        # Handshakes can take seconds: the first check runs after setup.
        entry.async_create_background_task(
            hass, endpoints.async_refresh(), f"{DOMAIN} first endpoint check"
        )
    return True


async def _async_release_persist_records(
    hass: HomeAssistant,
    entry: SecureRemoteAccessConfigEntry,
    records: PersistRecords,
    settings: CertificateSettings | None,
) -> None:
    """Clear (in the background) the persistent records the entry no longer wants.

    Wanted: every DuckDNS name while the entry may validate through
    dns-persist-01; none with dns-01 only or without certificates.
    """
    keep = (
        set(entry.data[CONF_DOMAINS])
        if settings is not None and settings.persist_allowed
        else set()
    )
    if not set(await records.async_records()) - keep:
        return
    nameservers = settings.nameservers if settings else None
    entry.async_create_background_task(
        hass,
        records.async_release(duckdns_client(hass, entry.data), keep, nameservers),
        f"{DOMAIN} clear persistent validation records",
    )


@callback
def _async_setup_monitoring(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """Wire the certificate monitors: Repairs, file watch, renewals, stale devices."""
    runtime = entry.runtime_data
    sync = partial(async_sync_certificate_issues, hass, entry)
    for monitor in runtime.monitors:
        entry.async_on_unload(monitor.async_add_listener(sync))
    sync()
    certificates = runtime.certificates
    certificates.async_watch_files()
    if runtime.managed is not None:

        @callback
        def _renewed(_outcome: RenewalOutcome) -> None:
            entry.async_create_task(
                hass, certificates.async_refresh(), "read the renewed certificate"
            )

        entry.async_on_unload(runtime.managed.renewal.async_on_renewed(_renewed))
    _async_remove_stale_certificate_entries(hass, entry)


@callback
def _async_remove_stale_certificate_entries(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """Remove devices of endpoints and entities of local certificates now gone."""
    runtime = entry.runtime_data
    wanted = {
        endpoint_device_identifier(entry.entry_id, source.endpoint.label)
        for source in runtime.endpoints.sources.values()
        if source.endpoint is not None
    }
    device_registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(device_registry, entry.entry_id):
        identifiers = {
            identifier for domain, identifier in device.identifiers if domain == DOMAIN
        }
        if entry.entry_id in identifiers or identifiers & wanted or not identifiers:
            continue
        device_registry.async_remove_device(device.id)
    local = runtime.certificates.sources
    stale_prefixes = tuple(
        f"{entry.entry_id}_{kind.value}_certificate_"
        for kind in (CertificateKind.MANAGED, CertificateKind.SERVED)
        if kind.value not in local
    )
    # Without a managed certificate the renewal sensors have nothing to show.
    stale_ids = (
        {f"{entry.entry_id}_{description.key}" for description in RENEWAL_SENSORS}
        if runtime.managed is None
        else set()
    )
    entity_registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(entity_registry, entry.entry_id):
        if entity.unique_id in stale_ids or (
            stale_prefixes and entity.unique_id.startswith(stale_prefixes)
        ):
            entity_registry.async_remove(entity.entity_id)


async def async_unload_entry(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> bool:
    """Unload a config entry; disabled while Home Assistant serves its pair: warn."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if entry.disabled_by is not None:
        await async_warn_unmanaged(
            hass,
            CertificateSettings.from_options(
                list(entry.data[CONF_DOMAINS]), entry.options
            ),
            await get_https_trial(hass).async_set_urls(),
        )
    return unloaded


async def async_remove_entry(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """Forget the entry's Repairs issues and stored state when it is deleted.

    Persistent validation records it set in DuckDNS are cleared. The
    checklist's issues and the serving-HTTPS record belong to the
    installation: they go with the last entry (a trial then is no longer
    followed). The ACME accounts stay (README: Removal).
    """
    async_delete_entry_issues(hass, entry.entry_id)
    await async_remove_renewal_state(hass, entry.entry_id)
    await RemoteAccessMemory(hass, entry.entry_id).async_remove()
    await async_remove_forwards(hass, entry.entry_id)
    await async_remove_pinholes(hass, entry.entry_id)
    settings = CertificateSettings.from_options(
        list(entry.data[CONF_DOMAINS]), entry.options
    )
    # Serving HTTPS: a trial of the entry is no longer ours to follow; served
    # files that nobody renews get a lasting warning.
    trial = get_https_trial(hass)
    await trial.async_resolve()
    await async_warn_unmanaged(hass, settings, await trial.async_set_urls())
    records = PersistRecords(hass, entry.entry_id)
    for domain in await records.async_release(
        duckdns_client(hass, entry.data),
        nameservers=settings.nameservers if settings else None,
    ):
        # Nobody is left to try again: the user clears it at duckdns.org.
        async_raise_persist_record_left(hass, domain)
    await records.async_remove()
    await PersistRefusals(hass, entry.entry_id).async_remove()
    if not hass.config_entries.async_entries(DOMAIN):
        async_delete_installation_issues(hass)
        await async_forget_trial(hass)


async def async_remove_config_entry_device(
    hass: HomeAssistant,
    entry: SecureRemoteAccessConfigEntry,
    device: dr.DeviceEntry,
) -> bool:
    """Deleting an endpoint's device stops monitoring that endpoint.

    The entry's own device cannot be deleted (delete the entry instead).
    """
    identifiers = {
        identifier for domain, identifier in device.identifiers if domain == DOMAIN
    }
    if not identifiers or entry.entry_id in identifiers:
        return False
    configured = endpoints_from_options(entry.options)
    remaining = [
        endpoint
        for endpoint in configured
        if endpoint_device_identifier(entry.entry_id, endpoint.label) not in identifiers
    ]
    if len(remaining) == len(configured):
        return True  # a device left over from an endpoint removed earlier
    hass.config_entries.async_update_entry(
        entry,
        options={
            **entry.options,
            CONF_ENDPOINTS: [endpoint.as_option() for endpoint in remaining],
        },
    )
    hass.config_entries.async_schedule_reload(entry.entry_id)
    return True
