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
from .entity import (
    CertificateEntity,
    SecureRemoteAccessEntity,
    async_entry_device_id,
    certificate_device_info,
    known_values,
)
from .models import SecureRemoteAccessConfigEntry
from .status import CertificateKind, status_attributes

PARALLEL_UPDATES = 0

DNS_PROBLEM = BinarySensorEntityDescription(
    key="dns_update_problem",
    translation_key="dns_update_problem",
    device_class=BinarySensorDeviceClass.PROBLEM,
)

CERTIFICATE_PROBLEMS: dict[CertificateKind, BinarySensorEntityDescription] = {
    CertificateKind.MANAGED: BinarySensorEntityDescription(
        key="certificate_problem",
        translation_key="managed_certificate_problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
    ),
    CertificateKind.SERVED: BinarySensorEntityDescription(
        key="certificate_problem",
        translation_key="served_certificate_problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
    ),
    CertificateKind.ENDPOINT: BinarySensorEntityDescription(
        key="certificate_problem",
        translation_key="certificate_problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
    ),
}


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SecureRemoteAccessConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the entry's binary sensors."""
    async_add_entities([DnsProblemSensor(entry.runtime_data.dns, entry, DNS_PROBLEM)])
    via_device_id = async_entry_device_id(hass, entry)
    async_add_entities(
        CertificateProblemSensor(
            monitor,
            entry,
            source,
            CERTIFICATE_PROBLEMS[source.kind],
            certificate_device_info(entry, source, via_device_id),
        )
        for monitor in entry.runtime_data.monitors
        for source in monitor.sources.values()
    )


class DnsProblemSensor(SecureRemoteAccessEntity[DnsCoordinator], BinarySensorEntity):
    """On while DuckDNS updates fail."""

    @property
    def is_on(self) -> bool:
        """True while updates fail."""
        return self.coordinator.data.failing

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The number of failed attempts and the last error, if any."""
        data = self.coordinator.data
        return {"failures": data.failures, **known_values(last_error=data.last_error)}


class CertificateProblemSensor(CertificateEntity, BinarySensorEntity):
    """On while a certificate has a problem; the ``reason`` attribute says which."""

    _unrecorded_attributes = frozenset(
        {
            "days_remaining",
            "path",
            "subject",
            "issuer",
            "serial_number",
            "names",
            "not_before",
            "not_after",
            "missing_names",
            "error",
        }
    )

    @property
    def is_on(self) -> bool | None:
        """True while something is wrong; None before the first check."""
        if (status := self.status) is None:
            return None
        return bool(status.problems)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """The reason, the days left and what the certificate says."""
        if (status := self.status) is None:
            return None
        return status_attributes(status)
