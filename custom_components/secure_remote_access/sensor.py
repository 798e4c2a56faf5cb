"""Sensors of Secure Remote Access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .checklist.runner import DATA_CHECKLIST, ChecklistRunner
from .const import Ipv6Mode
from .coordinator import DnsCoordinator, DnsState
from .entity import (
    CertificateEntity,
    SecureRemoteAccessEntity,
    async_entry_device_id,
    certificate_device_info,
    entry_device_info,
    known_values,
)
from .models import SecureRemoteAccessConfigEntry
from .protocol.remote_access import RemoteAccessState
from .remote_access import RemoteAccessCoordinator, RemoteAccessResult
from .renewal import RenewalCoordinator, RenewalResult
from .status import CertificateKind, CertificateStatus

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

    value_fn: Callable[[RenewalCoordinator], str | datetime | None]


RENEWAL_SENSORS: tuple[RenewalSensorDescription, ...] = (
    RenewalSensorDescription(
        key="next_renewal",
        translation_key="next_renewal",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda renewal: renewal.next_renewal,
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


@dataclass(frozen=True, kw_only=True)
class CertificateSensorDescription(SensorEntityDescription):
    """A sensor that shows one value of a certificate's status."""

    value_fn: Callable[[CertificateStatus], datetime | int | None]


def _not_after(status: CertificateStatus) -> datetime | None:
    return status.info.not_after if status.info is not None else None


def _days_remaining(status: CertificateStatus) -> int | None:
    return status.days_remaining


def _expiry(translation_key: str) -> CertificateSensorDescription:
    return CertificateSensorDescription(
        key="certificate_expiry",
        translation_key=translation_key,
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_not_after,
    )


def _days(translation_key: str) -> CertificateSensorDescription:
    return CertificateSensorDescription(
        key="certificate_days_remaining",
        translation_key=translation_key,
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.DAYS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=_days_remaining,
    )


# Translation keys per kind, so that names read "Managed certificate expiry" on
# the entry's device and "Certificate expiry" on an endpoint's own device.
CERTIFICATE_SENSORS: dict[CertificateKind, tuple[CertificateSensorDescription, ...]] = {
    CertificateKind.MANAGED: (
        _expiry("managed_certificate_expiry"),
        _days("managed_certificate_days_remaining"),
    ),
    CertificateKind.SERVED: (
        _expiry("served_certificate_expiry"),
        _days("served_certificate_days_remaining"),
    ),
    CertificateKind.ENDPOINT: (
        _expiry("certificate_expiry"),
        _days("certificate_days_remaining"),
    ),
}


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
            RemoteAccessSensor(entry.runtime_data.remote_access, entry, REMOTE_ACCESS),
        ]
    )
    if (managed := entry.runtime_data.managed) is not None:
        async_add_entities(
            RenewalSensor(managed.renewal, entry, description)
            for description in RENEWAL_SENSORS
        )
    via_device_id = async_entry_device_id(hass, entry)
    async_add_entities(
        CertificateSensor(
            monitor,
            entry,
            source,
            description,
            certificate_device_info(entry, source, via_device_id),
        )
        for monitor in entry.runtime_data.monitors
        for source in monitor.sources.values()
        for description in CERTIFICATE_SENSORS[source.kind]
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
        scheduler: RenewalCoordinator,
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
        """The failures; the last error and how control was proven, when known."""
        if self.entity_description.key != "last_renewal_result":
            return None
        state = self._scheduler.state
        outcome = state.last_outcome or {}
        return {
            "failures": state.failures,
            # Spelled as in the action's response and the event (dns-01,
            # dns-persist-01): translated state attributes allow the hyphen.
            **known_values(
                last_error=state.last_error,
                validation_method=outcome.get("validation_method"),
                validation_note=outcome.get("validation_note"),
                validation_detail=outcome.get("validation_detail"),
            ),
        }


class CertificateSensor(CertificateEntity, SensorEntity):
    """When a certificate expires, or how many whole days it has left."""

    entity_description: CertificateSensorDescription

    @property
    def native_value(self) -> datetime | int | None:
        """The current value; None before the first check or without a certificate."""
        if (status := self.status) is None:
            return None
        return self.entity_description.value_fn(status)


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


#: Remote access attributes shown only when they say something.
EXPLAINING: Final = ("reason", "wan_connection", "router")

REMOTE_ACCESS = SensorEntityDescription(
    key="remote_access",
    translation_key="remote_access",
    device_class=SensorDeviceClass.ENUM,
    options=[state.value for state in RemoteAccessState],
)


class RemoteAccessSensor(
    SecureRemoteAccessEntity[RemoteAccessCoordinator], SensorEntity
):
    """Whether the home is reachable from the internet, and why not."""

    @property
    def available(self) -> bool:
        """Unknown (not unavailable) until the first check ends."""
        return True

    @property
    def native_value(self) -> str | None:
        """The latest check's state; None before the first check."""
        result = self.coordinator.data
        return None if result is None else result.state.value

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Public and WAN address, the mappings to this host, the hairpin result.

        The reason only while the state is unknown, the router and the WAN
        connection service read only when a router answered: the frontend
        would show a missing one as "Unknown" beside "Reachable".
        """
        result: RemoteAccessResult | None = self.coordinator.data  # None at first
        if result is None:
            return None
        attributes = result.attributes()
        explaining = {key: attributes.pop(key) for key in EXPLAINING}
        runtime = self.coordinator.config_entry.runtime_data
        return {
            **attributes,
            **known_values(
                **explaining,
                forwarded_https_port=runtime.port_forward.external_port,
                ipv6_pinhole_port=result.facts.ipv6_pinhole_port,
            ),
        }
