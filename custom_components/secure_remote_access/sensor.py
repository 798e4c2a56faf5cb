"""Sensors of Secure Remote Access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import Ipv6Mode
from .coordinator import DnsCoordinator, DnsState
from .entity import SecureRemoteAccessEntity
from .models import SecureRemoteAccessConfigEntry

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class DnsSensorDescription(SensorEntityDescription):
    """A sensor that shows one value of the DNS state."""

    value_fn: Callable[[DnsState], str | datetime | None]


DNS_SENSORS: tuple[DnsSensorDescription, ...] = (
    DnsSensorDescription(
        key="public_ipv4",
        translation_key="public_ipv4",
        value_fn=lambda state: state.ipv4,
    ),
    DnsSensorDescription(
        key="public_ipv6",
        translation_key="public_ipv6",
        value_fn=lambda state: state.ipv6,
    ),
    DnsSensorDescription(
        key="last_dns_update",
        translation_key="last_dns_update",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.last_success,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SecureRemoteAccessConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the entry's sensors."""
    dns = entry.runtime_data.dns
    async_add_entities(
        DnsSensor(dns, entry, description) for description in DNS_SENSORS
    )


class DnsSensor(SecureRemoteAccessEntity[DnsCoordinator], SensorEntity):
    """A value DuckDNS recorded for the entry's names."""

    entity_description: DnsSensorDescription

    def __init__(
        self,
        coordinator: DnsCoordinator,
        entry: SecureRemoteAccessConfigEntry,
        description: DnsSensorDescription,
    ) -> None:
        """Disable the IPv6 sensor by default while IPv6 updating is off."""
        super().__init__(coordinator, entry, description)
        if description.key == "public_ipv6":
            self._attr_entity_registry_enabled_default = (
                coordinator.ipv6_mode is not Ipv6Mode.OFF
            )

    @property
    def native_value(self) -> str | datetime | None:
        """The current value."""
        return self.entity_description.value_fn(self.coordinator.data)
