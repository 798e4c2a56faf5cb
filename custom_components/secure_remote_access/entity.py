"""Base entity: one service device per config entry."""

from __future__ import annotations

from typing import Any

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import (
    CoordinatorEntity,
    DataUpdateCoordinator,
)

from .const import DOMAIN
from .models import SecureRemoteAccessConfigEntry


def entry_device_info(entry: SecureRemoteAccessConfigEntry) -> DeviceInfo:
    """The service device that groups an entry's entities."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Secure Remote Access",
        model="DuckDNS and Let's Encrypt",
        entry_type=DeviceEntryType.SERVICE,
        configuration_url="https://www.duckdns.org/",
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
