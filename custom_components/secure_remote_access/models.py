"""Typed runtime data of a Secure Remote Access config entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .certificate import CertificateManager
    from .coordinator import DnsCoordinator, EndpointMonitor, LocalCertificateMonitor
    from .protocol.duckdns import DuckDnsClient
    from .renewal import RenewalCoordinator


@dataclass(slots=True)
class RuntimeData:
    """What a loaded config entry holds while it runs."""

    duckdns: DuckDnsClient
    dns: DnsCoordinator
    certificate: CertificateManager | None = None
    renewal: RenewalCoordinator | None = None
    certificates: LocalCertificateMonitor | None = None
    endpoints: EndpointMonitor | None = None


type SecureRemoteAccessConfigEntry = ConfigEntry[RuntimeData]
