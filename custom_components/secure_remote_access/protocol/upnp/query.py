"""Read-only gateway query: the WAN connection in use, its address and mappings.

No Home Assistant imports. Nothing here ever changes the router.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import ipaddress
import logging
import socket
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from .errors import ActionRefusedError, GatewayError, GatewayReason, invalid_reply
from .wan import (
    IPV6_FIREWALL,
    ConnectionKind,
    WanConnection,
    choose_connection,
    open_gateway,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 10.0
#: The most GetGenericPortMappingEntry requests one query sends.
MAX_MAPPINGS: Final = 16
#: The most GetSpecificPortMappingEntry requests one query sends.
MAX_WANTED: Final = 8
#: The UPnP errors that end GetGenericPortMappingEntry's list:
#: 713 SpecifiedArrayIndexInvalid, 714 NoSuchEntryInArray.
END_OF_LIST: Final = frozenset({713, 714})
#: GetSpecificPortMappingEntry's "there is no such mapping".
NO_SUCH_ENTRY: Final = 714
TCP: Final = "TCP"


@dataclass(frozen=True, slots=True)
class PortMapping:
    """One port mapping of the router.

    ``description`` and the ``lease_seconds`` left (0: permanent) do not
    take part in comparisons: two reads of one mapping are equal.
    """

    external_port: int
    protocol: str
    internal_port: int
    internal_client: str
    enabled: bool
    description: str = field(default="", compare=False)
    lease_seconds: int = field(default=0, compare=False)

    @property
    def all_ports(self) -> bool:
        """External port 0, the IGD wildcard: every external port is forwarded."""
        return self.external_port == 0

    def as_dict(self) -> dict[str, str | int | bool]:
        """JSON-friendly form."""
        return {
            "external_port": self.external_port,
            "internal_port": self.internal_port,
            "protocol": self.protocol,
            "internal_client": self.internal_client,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True)
class GatewayFacts:
    """What the router told us; ``local_address`` is ours as it sees us."""

    location: str
    wan_address: str | None
    mappings: tuple[PortMapping, ...]
    local_address: str | None
    #: More mappings than were read: the list is incomplete.
    truncated: bool = False
    #: The router refused GetGenericPortMappingEntry: the mappings are unknown.
    mappings_refused: bool = False
    #: Entries that made no sense and were skipped: the list is incomplete.
    invalid_entries: int = 0
    #: The router answered an empty WAN address: miniupnpd does so to hide a
    #: private or shared one (carrier-grade or double NAT).
    wan_address_hidden: bool = False
    #: Which connection service answered, and the status it reported.
    connection: ConnectionKind | None = None
    connection_status: str | None = None
    #: External TCP ports whose mapping the router told completely: listed,
    #: or asked for by number (found, or 714 NoSuchEntryInArray).
    known_ports: frozenset[int] = frozenset()
    #: The router's friendlyName.
    router_name: str | None = None
    #: The root device's UDN (None: the description names none).
    udn: str | None = None
    #: An IPv6 firewall (pinhole) service sits beside the connection in use.
    pinholes: bool = False
    #: The same router's description URL over IPv6 (None: not found).
    ipv6_location: str | None = None

    @property
    def incomplete(self) -> bool:
        """Whether mappings may exist that are not in `mappings`."""
        return self.truncated or self.invalid_entries > 0 or self.mappings_refused

    @property
    def disconnected(self) -> bool:
        """The router says its WAN connection is not up."""
        status = self.connection_status
        return status is not None and status.strip().lower() != "connected"


def local_address_towards(location: str) -> str | None:
    """Our IPv4 address on the route to the gateway (no packet is sent; blocking)."""
    parts = urlsplit(location)
    host = parts.hostname
    if host is None:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version != 4:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((str(address), parts.port or 80))
        except OSError:
            return None
        name: str = probe.getsockname()[0]
        return name


async def query_gateway(
    session: aiohttp.ClientSession,
    location: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    max_mappings: int = MAX_MAPPINGS,
    wanted_ports: Sequence[int] = (),
) -> GatewayFacts:
    """Read the WAN connection in use and up to ``max_mappings`` of its mappings.

    When that list is incomplete (longer, refused, or with entries that make
    no sense), the TCP mappings of the external ``wanted_ports`` (at most
    `MAX_WANTED`) are asked for by number (GetSpecificPortMappingEntry).
    ``timeout_seconds`` bounds the whole query. Raises `GatewayError`.
    """
    async with open_gateway(
        session, location, timeout_seconds=timeout_seconds
    ) as gateway:
        connection = await choose_connection(gateway)
        listing = await _list_mappings(connection, max_mappings)
        mappings, known = listing.mappings, listing.known_ports
        if listing.truncated or listing.refused or listing.invalid:
            found, answered = await _ask_ports(connection, wanted_ports, mappings)
            mappings += found
            known |= answered
    wan = connection.external_address
    return GatewayFacts(
        location=location,
        wan_address=_address_or_none(wan),
        mappings=mappings,
        local_address=None,
        truncated=listing.truncated,
        mappings_refused=listing.refused,
        invalid_entries=listing.invalid,
        wan_address_hidden=wan is not None and not wan.strip(),
        connection=connection.kind,
        connection_status=connection.status,
        known_ports=known,
        router_name=gateway.description.friendly_name or None,
        udn=gateway.description.udn or None,
        pinholes=bool(gateway.beside(connection, IPV6_FIREWALL)),
    )


async def gateway_udn(
    session: aiohttp.ClientSession, location: str, *, timeout_seconds: float
) -> str | None:
    """The UDN of the gateway described at ``location`` (raises `GatewayError`)."""
    async with open_gateway(
        session, location, timeout_seconds=timeout_seconds
    ) as gateway:
        return gateway.description.udn or None


def _address_or_none(text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError as err:
        raise invalid_reply(f"the WAN address {text[:40]!r} is no IP address") from err


def _as_port(value: object, *, wildcard: bool = False) -> int:
    """A port number; 0 only where the IGD allows it as the wildcard."""
    port = int(str(value).strip())
    if not (0 if wildcard else 1) <= port < 65536:
        raise ValueError(f"port {port} out of range")
    return port


def mapping_from(
    answer: Mapping[str, str], external: int | None = None, protocol: str = TCP
) -> PortMapping:
    """A mapping from GetGeneric/GetSpecificPortMappingEntry's answer (for
    GetSpecific: the ``external`` port and ``protocol`` asked for); ValueError
    (or KeyError) when it makes no sense."""
    if external is None:
        external = _as_port(answer["NewExternalPort"], wildcard=True)
    client = answer["NewInternalClient"].strip()
    if not client:
        raise ValueError("no internal client")
    return PortMapping(
        external_port=external,
        protocol=answer.get("NewProtocol", protocol).strip().upper() or protocol,
        # The wildcard external port may come with a wildcard internal one.
        internal_port=_as_port(answer["NewInternalPort"], wildcard=not external),
        internal_client=client,
        enabled=answer.get("NewEnabled", "1").strip().lower()
        not in ("0", "false", "no"),
        description=answer.get("NewPortMappingDescription", ""),
        lease_seconds=int(answer.get("NewLeaseDuration", "").strip() or 0),
    )


@dataclass(frozen=True, slots=True)
class _Listing:
    mappings: tuple[PortMapping, ...]
    truncated: bool
    refused: bool
    invalid: int

    @property
    def known_ports(self) -> frozenset[int]:
        return frozenset(m.external_port for m in self.mappings if m.protocol == TCP)


async def _list_mappings(connection: WanConnection, max_mappings: int) -> _Listing:
    """Index 0, 1, ... until the router says the index is invalid.

    Any other UPnP error for the first index means the router refused the
    listing (the mappings are unknown); after an entry, it ends the list as
    incomplete (routers end it with 402 or 501 too): the mappings read so
    far count, as they do when an answer is no SOAP at all (some routers
    garble the fault that ends the list). Entries that make no sense are
    skipped and counted.
    """
    found: list[PortMapping] = []
    invalid = 0
    for index in range(max_mappings):
        try:
            answer = await connection.call(
                "GetGenericPortMappingEntry", [("NewPortMappingIndex", index)]
            )
        except ActionRefusedError as err:
            if err.code in END_OF_LIST:
                return _Listing(tuple(found), False, False, invalid)
            if index == 0:
                return _Listing((), False, True, invalid)
            _LOGGER.debug(
                "Mapping %d refused, list taken as incomplete: %s", index, err
            )
            return _Listing(tuple(found), True, False, invalid)
        except GatewayError as err:
            if err.reason is not GatewayReason.INVALID_REPLY:
                raise
            _LOGGER.debug(
                "Mapping %d unreadable, list taken as incomplete: %s", index, err
            )
            return _Listing(tuple(found), index > 0, index == 0, invalid)
        try:
            found.append(mapping_from(answer))
        except ValueError, KeyError:
            invalid += 1  # e.g. an internal client that is no address, port 0
    return _Listing(tuple(found), True, False, invalid)


async def _ask_ports(
    connection: WanConnection, ports: Sequence[int], known: Sequence[PortMapping]
) -> tuple[tuple[PortMapping, ...], frozenset[int]]:
    """The TCP mappings of external ``ports`` not in ``known``, asked by number,
    and the ports the router answered for (found, or no such entry)."""
    listed = {m.external_port for m in known if m.protocol == TCP}
    found: list[PortMapping] = []
    answered: set[int] = set()
    for port in [p for p in dict.fromkeys(ports) if p not in listed][:MAX_WANTED]:
        try:
            answer = await connection.call(
                "GetSpecificPortMappingEntry",
                [
                    ("NewRemoteHost", ""),
                    ("NewExternalPort", port),
                    ("NewProtocol", TCP),
                ],
            )
        except ActionRefusedError as err:
            if err.code == NO_SUCH_ENTRY:
                answered.add(port)  # the router says there is none
            continue
        except GatewayError as err:
            if err.reason is not GatewayReason.INVALID_REPLY:
                raise
            continue
        try:
            found.append(mapping_from(answer, external=port))
        except ValueError, KeyError:
            continue
        answered.add(port)
    return tuple(found), frozenset(answered)
