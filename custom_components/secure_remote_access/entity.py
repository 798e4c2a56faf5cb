"""Base entity: one service device per config entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import (
    CoordinatorEntity,
    DataUpdateCoordinator,
)

from .const import (
    CONF_ACME_DIRECTORY,
    DOMAIN,
    DUCKDNS_ACCOUNT_URL,
    LETSENCRYPT,
    LETSENCRYPT_STAGING,
)
from .coordinator import CertificateMonitor
from .models import SecureRemoteAccessConfigEntry
from .status import CertificateSource, CertificateStatus


def known_values(**attributes: Any) -> dict[str, Any]:
    """Attributes that explain something, left out while there is nothing to say.

    Home Assistant's frontend shows an attribute whose value is None as
    "Unknown", which misleads for "no error" or "no reason".
    """
    return {key: value for key, value in attributes.items() if value is not None}


def entry_model(options: Mapping[str, Any]) -> str:
    """The device model: DuckDNS, and the CA when a certificate is managed."""
    directory = options.get(CONF_ACME_DIRECTORY)
    if not directory:
        return "DuckDNS"
    if directory == LETSENCRYPT:
        return "DuckDNS and Let's Encrypt"
    if directory == LETSENCRYPT_STAGING:
        return "DuckDNS and Let's Encrypt (staging)"
    return f"DuckDNS and the ACME CA at {urlsplit(directory).netloc or directory}"


def entry_device_info(entry: SecureRemoteAccessConfigEntry) -> DeviceInfo:
    """The service device that groups an entry's entities."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Secure Remote Access",
        model=entry_model(entry.options),
        entry_type=DeviceEntryType.SERVICE,
        configuration_url=DUCKDNS_ACCOUNT_URL,
    )


class SecureRemoteAccessEntity[CoordinatorT: DataUpdateCoordinator[Any]](
    CoordinatorEntity[CoordinatorT]
):
    """An entity of an entry's service device, named by its translation key."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: CoordinatorT,
        entry: SecureRemoteAccessConfigEntry,
        description: EntityDescription,
    ) -> None:
        """Bind the entity to its coordinator and device."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = entry_device_info(entry)


def endpoint_device_identifier(entry_id: str, label: str) -> str:
    """The device registry identifier of a remote endpoint's device."""
    return f"{entry_id}_{label}"


@callback
def async_entry_device_id(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> str:
    """The registry ID of the entry's service device (created when missing)."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **entry_device_info(entry)
    )
    return device.id


def certificate_device_info(
    entry: SecureRemoteAccessConfigEntry,
    source: CertificateSource,
    via_device_id: str,
) -> DeviceInfo:
    """Local certificates belong to the entry's device, endpoints to their own."""
    if source.endpoint is None:
        return entry_device_info(entry)
    return DeviceInfo(
        identifiers={
            (DOMAIN, endpoint_device_identifier(entry.entry_id, source.endpoint.label))
        },
        name=source.endpoint.label,
        manufacturer="Secure Remote Access",
        model="TLS endpoint",
        entry_type=DeviceEntryType.SERVICE,
        via_device_id=via_device_id,
    )


class CertificateEntity(CoordinatorEntity[CertificateMonitor]):
    """An entity about one monitored certificate."""

    _attr_has_entity_name = True

    def __init__(
        self,
        monitor: CertificateMonitor,
        entry: SecureRemoteAccessConfigEntry,
        source: CertificateSource,
        description: EntityDescription,
        device_info: DeviceInfo,
    ) -> None:
        """Bind the entity to its certificate and device."""
        super().__init__(monitor)
        self.entity_description = description
        self.source = source
        self._attr_unique_id = f"{entry.entry_id}_{source.key}_{description.key}"
        self._attr_device_info = device_info

    @property
    def status(self) -> CertificateStatus | None:
        """The certificate's judgement now; None before it was observed."""
        return self.coordinator.status(self.source.key)
