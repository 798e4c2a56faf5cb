"""Typed runtime data of a Secure Remote Access config entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .certificate import CertificateManager
    from .coordinator import (
        CertificateMonitor,
        DnsCoordinator,
        EndpointMonitor,
        LocalCertificateMonitor,
    )
    from .pinhole_keeping import PinholeKeeper
    from .port_forwarding import PortForwardKeeper
    from .protocol.duckdns import DuckDnsClient
    from .remote_access import RemoteAccessCoordinator
    from .renewal import RenewalCoordinator


@dataclass(frozen=True, slots=True)
class ManagedCertificate:
    """What exists only while the entry obtains a certificate."""

    manager: CertificateManager
    renewal: RenewalCoordinator


@dataclass(frozen=True, slots=True)
class RuntimeData:
    """What a loaded config entry holds while it runs."""

    duckdns: DuckDnsClient
    dns: DnsCoordinator
    certificates: LocalCertificateMonitor
    """The managed and the served certificate files (either may be absent)."""
    endpoints: EndpointMonitor
    managed: ManagedCertificate | None
    remote_access: RemoteAccessCoordinator
    port_forward: PortForwardKeeper
    """The entry's HTTPS forward on the router."""
    pinhole: PinholeKeeper
    """The entry's IPv6 pinhole on the router."""

    @property
    def monitors(self) -> tuple[CertificateMonitor, ...]:
        """Both certificate monitors."""
        return (self.certificates, self.endpoints)


type SecureRemoteAccessConfigEntry = ConfigEntry[RuntimeData]
