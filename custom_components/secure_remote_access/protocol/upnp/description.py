"""A gateway's device description: every device and service, in document order.

No Home Assistant imports. async_upnp_client's device model keeps one
embedded device and one service per type, so a router with two
WANConnectionDevices (one per DSL line or VLAN) or two connection services
of one type would show only the last; the UPnP specification allows any
number. This walk keeps them all, bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import logging
from typing import Final
from urllib.parse import urljoin, urlsplit
import xml.etree.ElementTree as ET
from xml.parsers import expat

from .errors import invalid_reply
from .http import check_xml, read_xml

_LOGGER = logging.getLogger(__name__)

IGD_PREFIX: Final = "urn:schemas-upnp-org:device:InternetGatewayDevice:"
#: The most devices and services one description may list (a router lists
#: four devices and about a dozen services).
MAX_DEVICES: Final = 32
MAX_SERVICES: Final = 64
_NAME_LENGTH: Final = 80


@dataclass(frozen=True, slots=True)
class Service:
    """One service of the description, with the device that holds it."""

    service_type: str
    service_id: str
    control_url: str
    #: Position of the holding device in document order (0: the root device).
    device: int
    device_type: str


@dataclass(frozen=True, slots=True)
class Description:
    """What a gateway's description says."""

    location: str
    device_type: str
    friendly_name: str
    services: tuple[Service, ...]
    #: The root device's UDN ("uuid:..."): the same router over IPv4 and IPv6.
    udn: str = ""

    def services_of(self, *prefixes: str) -> tuple[Service, ...]:
        """The services whose type starts with one of ``prefixes``, in order."""
        return tuple(s for s in self.services if s.service_type.startswith(prefixes))


def _local(tag: object) -> str:
    return str(tag).rpartition(":")[2]


def _tree(text: str) -> ET.Element:
    """The element tree of ``text`` (bounded and free of entities: `check_xml`)."""
    check_xml(text)
    builder = ET.TreeBuilder()
    try:
        read_xml(text, builder.start, builder.end, builder.data)
    except expat.ExpatError as err:
        raise invalid_reply(f"the description is no XML ({err})") from err
    return builder.close()


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def _text(element: ET.Element, name: str) -> str:
    for child in _children(element, name):
        return (child.text or "").strip()
    return ""


def parse_description(text: str, location: str) -> Description:
    """Every device and service of an Internet gateway's description.

    Namespaces are not insisted on (routers get them wrong). A URLBase on
    another host is ignored (URLs are taken relative to ``location``);
    services whose control URL is on another host are left out. Raises
    `GatewayError` (invalid reply) for anything that is no gateway.
    """
    root = _tree(text)
    host = urlsplit(location).hostname
    base = _text(root, "URLBase")
    if not base or urlsplit(base).hostname != host:
        # Deprecated since UPnP 1.1; routers leave stale addresses there.
        base = location
    top = next(_children(root, "device"), None)
    if top is None:
        raise invalid_reply("the description names no device")
    device_type = _text(top, "deviceType")
    if not device_type.startswith(IGD_PREFIX):
        raise invalid_reply("the device is no Internet gateway")
    services: list[Service] = []
    pending = [top]
    count = 0
    while pending:
        device = pending.pop()
        if count >= MAX_DEVICES:
            raise invalid_reply(f"more than {MAX_DEVICES} devices")
        for lists in _children(device, "serviceList"):
            for element in _children(lists, "service"):
                if len(services) >= MAX_SERVICES:
                    raise invalid_reply(f"more than {MAX_SERVICES} services")
                path = _text(element, "controlURL")
                control = urljoin(base, path)
                if not path or urlsplit(control).hostname != host:
                    _LOGGER.debug(
                        "Service without control URL on this host: %s", control
                    )
                    continue
                services.append(
                    Service(
                        service_type=_text(element, "serviceType"),
                        service_id=_text(element, "serviceId"),
                        control_url=control,
                        device=count,
                        device_type=_text(device, "deviceType"),
                    )
                )
        embedded = [d for lists in _children(device, "deviceList") for d in lists]
        pending.extend(reversed([d for d in embedded if _local(d.tag) == "device"]))
        count += 1
    return Description(
        location=location,
        device_type=device_type,
        friendly_name=_text(top, "friendlyName")[:_NAME_LENGTH],
        services=tuple(services),
        udn=_text(top, "UDN")[:_NAME_LENGTH],
    )
