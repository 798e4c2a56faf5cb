"""The coordinators of a config entry: DuckDNS, local certificate files, endpoints."""

from .certificates import (
    CertificateMonitor,
    EndpointMonitor,
    LocalCertificateMonitor,
    async_local_sources,
)
from .dns import DnsCoordinator, DnsState, DnsUpdateError

__all__ = [
    "CertificateMonitor",
    "DnsCoordinator",
    "DnsState",
    "DnsUpdateError",
    "EndpointMonitor",
    "LocalCertificateMonitor",
    "async_local_sources",
]
