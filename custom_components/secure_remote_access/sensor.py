"""Sensors of Secure Remote Access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from .entity import SecureRemoteAccessEntity, entry_device_info
from .models import SecureRemoteAccessConfigEntry
from .renewal import RenewalResult, RenewalScheduler

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


@dataclass(frozen=True, kw_only=True)
class RenewalSensorDescription(SensorEntityDescription):
    """A sensor that shows one value of the renewal scheduler."""

    value_fn: Callable[[RenewalScheduler], str | datetime | None]


RENEWAL_SENSORS: tuple[RenewalSensorDescription, ...] = (
    RenewalSensorDescription(
        key="next_renewal",
        translation_key="next_renewal",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda scheduler: scheduler.state.next_renewal,
    ),
    RenewalSensorDescription(
        key="last_renewal_result",
        translation_key="last_renewal_result",
        device_class=SensorDeviceClass.ENUM,
        options=RenewalResult.OPTIONS,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda scheduler: scheduler.state.last_result,
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
    if (renewal := entry.runtime_data.renewal) is not None:
        async_add_entities(
            RenewalSensor(renewal, entry, description)
            for description in RENEWAL_SENSORS
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


class RenewalSensor(SensorEntity):
    """A value of the certificate renewal scheduler; pushed, never polled."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    entity_description: RenewalSensorDescription

    def __init__(
        self,
        scheduler: RenewalScheduler,
        entry: SecureRemoteAccessConfigEntry,
        description: RenewalSensorDescription,
    ) -> None:
        """Bind the sensor to the entry's scheduler."""
        self._scheduler = scheduler
        self.entity_description = description
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = entry_device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow the scheduler's state."""
        self.async_on_remove(
            self._scheduler.async_add_listener(self.async_write_ha_state)
        )

    @property
    def native_value(self) -> str | datetime | None:
        """The current value."""
        return self.entity_description.value_fn(self._scheduler)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """The last error, for the result sensor."""
        if self.entity_description.key != "last_renewal_result":
            return None
        state = self._scheduler.state
        return {"last_error": state.last_error, "failures": state.failures}
