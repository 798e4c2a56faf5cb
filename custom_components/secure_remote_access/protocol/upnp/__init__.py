"""UPnP IGD client: the router's WAN connection in use, its address and mappings.

No Home Assistant imports. ``http`` bounds and decodes every answer,
``description`` walks every device and service, ``soap`` calls one action,
``wan`` opens a gateway and chooses the WAN connection service in use (the
one object that reads or writes port mappings), ``query`` reads it.
"""

from async_upnp_client.profiles.igd import IgdDevice

from .description import Description, Service
from .errors import ActionRefusedError, GatewayError, GatewayReason
from .http import MAX_DESCRIPTION_BYTES, MAX_XML_DEPTH, BoundedRequester, decode_body
from .query import (
    DEFAULT_TIMEOUT,
    MAX_MAPPINGS,
    MAX_WANTED,
    GatewayFacts,
    PortMapping,
    gateway_udn,
    local_address_towards,
    query_gateway,
)
from .wan import (
    IPV6_FIREWALL,
    ConnectionKind,
    Gateway,
    WanConnection,
    WanKind,
    choose_connection,
    open_gateway,
    usable_ipv4,
    wan_kind,
)

IGD_SEARCH_TARGETS = tuple(IgdDevice.DEVICE_TYPES)

__all__ = [
    "DEFAULT_TIMEOUT",
    "IGD_SEARCH_TARGETS",
    "IPV6_FIREWALL",
    "MAX_DESCRIPTION_BYTES",
    "MAX_MAPPINGS",
    "MAX_WANTED",
    "MAX_XML_DEPTH",
    "ActionRefusedError",
    "BoundedRequester",
    "ConnectionKind",
    "Description",
    "Gateway",
    "GatewayError",
    "GatewayFacts",
    "GatewayReason",
    "PortMapping",
    "Service",
    "WanConnection",
    "WanKind",
    "choose_connection",
    "decode_body",
    "gateway_udn",
    "local_address_towards",
    "open_gateway",
    "query_gateway",
    "usable_ipv4",
    "wan_kind",
]
