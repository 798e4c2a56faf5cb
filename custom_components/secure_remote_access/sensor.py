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

from .checklist.runner import DATA_CHECKLIST, ChecklistRunner
from .const import Ipv6Mode
from .coordinator import DnsCoordinator, DnsState
from .entity import SecureRemoteAccessEntity, entry_device_info
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
        [
            *(DnsSensor(dns, entry, description) for description in DNS_SENSORS),
            SecurityFindingsSensor(hass.data[DATA_CHECKLIST], entry),
        ]
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


SECURITY_FINDINGS = SensorEntityDescription(
    key="security_findings", translation_key="security_findings"
)


class SecurityFindingsSensor(SensorEntity):
    """The number of failing security checks, from the shared checklist runner."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    entity_description = SECURITY_FINDINGS

    def __init__(
        self, runner: ChecklistRunner, entry: SecureRemoteAccessConfigEntry
    ) -> None:
        """Read the runner's latest result; it tells us when a run finished."""
        self._runner = runner
        self._attr_unique_id = f"{entry.entry_id}_{SECURITY_FINDINGS.key}"
        self._attr_device_info = entry_device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow the runner's results."""
        self.async_on_remove(self._runner.async_add_listener(self.async_write_ha_state))

    @property
    def native_value(self) -> int | None:
        """The number of failing enabled checks; unknown before the first run."""
        result = self._runner.result
        return None if result is None else len(result.findings)

    @property
    def extra_state_attributes(self) -> dict[str, list[str]]:
        """The ids of the failing checks."""
        result = self._runner.result
        return {"failing_checks": [] if result is None else result.failing_ids}
