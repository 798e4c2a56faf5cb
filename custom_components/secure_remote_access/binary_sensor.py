"""Binary sensors of Secure Remote Access."""

from __future__ import annotations

from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import DnsCoordinator
from .entity import SecureRemoteAccessEntity
from .models import SecureRemoteAccessConfigEntry

PARALLEL_UPDATES = 0

DNS_PROBLEM = BinarySensorEntityDescription(
    key="dns_update_problem",
    translation_key="dns_update_problem",
    device_class=BinarySensorDeviceClass.PROBLEM,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SecureRemoteAccessConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the entry's binary sensors."""
    async_add_entities([DnsProblemSensor(entry.runtime_data.dns, entry, DNS_PROBLEM)])


class DnsProblemSensor(SecureRemoteAccessEntity[DnsCoordinator], BinarySensorEntity):
    """On while DuckDNS updates fail."""

    @property
    def is_on(self) -> bool:
        """True while updates fail."""
        return self.coordinator.data.failing

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The number of failed attempts and the last error."""
        data = self.coordinator.data
        return {"failures": data.failures, "last_error": data.last_error}
