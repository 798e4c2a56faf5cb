"""The gateway and the WAN connection service it really uses.

No Home Assistant imports. A gateway may list several WANConnectionDevices,
each with WANIPConnection (v1, v2) and WANPPPConnection services: a DSL
router lists an unused WANIPConnection (Disconnected, no address) beside the
WANPPPConnection its PPPoE session runs on. The one that counts is Connected
with a usable external address; its port mappings are the router's.
Everything that reads or writes mappings goes through `WanConnection`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
import ipaddress
import logging
from typing import Final

import aiohttp
from async_upnp_client.const import HttpRequest
from async_upnp_client.exceptions import UpnpCommunicationError

from .description import Description, Service, parse_description
from .errors import (
    MALFORMED,
    ActionRefusedError,
    GatewayError,
    GatewayReason,
    caused_by,
    gateway_errors,
    invalid_reply,
)
from .http import BoundedRequester
from .soap import Argument, call_action

_LOGGER = logging.getLogger(__name__)

WAN_IP_CONNECTION: Final = "urn:schemas-upnp-org:service:WANIPConnection:"
WAN_PPP_CONNECTION: Final = "urn:schemas-upnp-org:service:WANPPPConnection:"
IPV6_FIREWALL: Final = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:"
CONNECTED: Final = "connected"
#: The most connection services probed (two actions each).
MAX_CONNECTIONS: Final = 8
_REQUEST_TIMEOUT: Final = 5
#: Why a service gave no answer at all (`_unanswered`).
_SILENT: Final = frozenset({GatewayReason.TIMEOUT, GatewayReason.UNREACHABLE})
#: What a request to a service that does not answer raises (its own bound).
_UNANSWERED: Final = (UpnpCommunicationError, aiohttp.ClientError, TimeoutError)
# No address a router's WAN side can have: "this network" (0.0.0.0/8, what
# routers without a connection report), loopback, link-local, multicast,
# reserved and broadcast.
_NO_WAN: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)


# WAN addresses behind another NAT: RFC 1918 and the shared 100.64.0.0/10 (RFC 6598).
_BEHIND_NAT: Final = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")
)


def usable_ipv4(text: str | None) -> bool:
    """Whether ``text`` is an IPv4 address a WAN interface can have."""
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return False
    return address.version == 4 and not any(address in net for net in _NO_WAN)


class WanKind(StrEnum):
    """What kind of address the router's WAN address is."""

    PUBLIC = "public"
    BEHIND_NAT = "behind_nat"
    INVALID = "invalid"


def wan_kind(text: str | None) -> WanKind:
    """Public, behind another NAT (private or shared), or no usable IPv4 address."""
    if not usable_ipv4(text):
        return WanKind.INVALID
    address = ipaddress.ip_address((text or "").strip())
    if any(address in net for net in _BEHIND_NAT):
        return WanKind.BEHIND_NAT
    return WanKind.PUBLIC


class ConnectionKind(StrEnum):
    """Which kind of WAN connection service answered."""

    IP = "wan_ip_connection"
    PPP = "wan_ppp_connection"


@dataclass(frozen=True, slots=True)
class Gateway:
    """A gateway's description, and the requester its actions go through."""

    location: str
    description: Description
    requester: BoundedRequester

    async def call(
        self, service: Service, action: str, arguments: Sequence[Argument] = ()
    ) -> dict[str, str]:
        """One action of one of its services (see `soap.call_action`)."""
        return await call_action(self.requester, service, action, arguments)

    def beside(self, connection: WanConnection, prefix: str) -> tuple[Service, ...]:
        """Services of type ``prefix`` in the connection's own device
        (``IPV6_FIREWALL``: the pinholes that go with it)."""
        device = connection.service.device
        return tuple(
            s for s in self.description.services_of(prefix) if s.device == device
        )


@dataclass(frozen=True, slots=True)
class WanConnection:
    """One WAN connection service and what it said when it was chosen.

    ``status`` is GetStatusInfo's ConnectionStatus (None: not answered);
    ``external_address`` GetExternalIPAddress's answer as sent (None: not
    answered, ``address_refusal`` says why: a UPnP error, or an answer that
    is no SOAP, such as a 501 page of a service the router lists but lacks).
    """

    gateway: Gateway
    service: Service
    status: str | None
    external_address: str | None
    address_refusal: ActionRefusedError | GatewayError | None = None

    @property
    def kind(self) -> ConnectionKind:
        """IP or PPP."""
        if self.service.service_type.startswith(WAN_PPP_CONNECTION):
            return ConnectionKind.PPP
        return ConnectionKind.IP

    @property
    def connected(self) -> bool:
        """Whether the router says this connection is up."""
        return (self.status or "").strip().lower() == CONNECTED

    @property
    def disconnected(self) -> bool:
        """Whether the router says it is anything but up (None: unknown)."""
        return self.status is not None and not self.connected

    @property
    def rank(self) -> int:
        """4 Connected with a public address, 3 Connected with a private or
        shared one (the ISP's local network beside a PPPoE session, or
        carrier-grade NAT), 2 a usable address whatever the status (some
        routers call the connection in use Unconfigured), 1 Connected
        without one (a hidden address), 0 anything else, -1 when the router
        refused to tell the address."""
        if self.address_refusal is not None:
            return -1
        match wan_kind(self.external_address):
            case WanKind.PUBLIC:
                return 4 if self.connected else 2
            case WanKind.BEHIND_NAT:
                return 3 if self.connected else 2
        return 1 if self.connected else 0

    async def call(
        self, action: str, arguments: Sequence[Argument] = ()
    ) -> dict[str, str]:
        """One action of this service (GetGenericPortMappingEntry, AddPortMapping...)."""
        return await self.gateway.call(self.service, action, arguments)


@asynccontextmanager
async def open_gateway(
    session: aiohttp.ClientSession, location: str, *, timeout_seconds: float
) -> AsyncIterator[Gateway]:
    """Read the description at ``location``; the block is bounded by
    ``timeout_seconds`` and every failure in it becomes a `GatewayError`."""
    # One request may take half the block: a hung service leaves time for
    # the others.
    requester = BoundedRequester(
        session,
        location,
        timeout=min(_REQUEST_TIMEOUT, max(1, int(timeout_seconds) // 2)),
    )
    async with gateway_errors(timeout_seconds):
        response = await requester.async_http_request(
            HttpRequest("GET", location, {}, None)
        )
        if response.status_code != 200:
            raise invalid_reply(f"the description: HTTP status {response.status_code}")
        description = parse_description(response.body or "", location)
        yield Gateway(location, description, requester)


async def choose_connection(gateway: Gateway) -> WanConnection:
    """The WAN connection service in use: the first of the highest `rank`.

    Every connection service of every device is asked, in document order,
    until one is Connected with a public address. Raises `GatewayError`
    when the gateway has none, or when one would not tell its address
    (a UPnP error, an answer that is no SOAP) and none is up.
    """
    services = gateway.description.services_of(WAN_IP_CONNECTION, WAN_PPP_CONNECTION)
    if not services:
        raise invalid_reply("the gateway has no WAN connection")
    best: WanConnection | None = None
    failure: ActionRefusedError | GatewayError | None = None
    silent: GatewayError | None = None
    for service in services[:MAX_CONNECTIONS]:
        connection = await _probe(gateway, service)
        _LOGGER.debug(
            "%s: %s, %r",
            service.service_type,
            connection.status,
            connection.external_address,
        )
        failure = failure or connection.address_refusal
        refusal = connection.address_refusal
        if isinstance(refusal, GatewayError) and refusal.reason in _SILENT:
            silent = silent or refusal
        if best is None or connection.rank > best.rank:
            best = connection
        if best.rank == 4:
            break
    assert best is not None
    if best.rank < 4 and silent is not None:
        # Only a connection that is up with a public address passes over one
        # that did not answer: that one may be the connection in use.
        raise silent
    if best.rank <= 0 and failure is not None:
        # A service that would not tell says more than an unused one's "down".
        raise failure
    return best


async def _probe(gateway: Gateway, service: Service) -> WanConnection:
    """Ask one connection service for its status and external address."""
    status: str | None = None
    try:
        status = (await gateway.call(service, "GetStatusInfo")).get(
            "NewConnectionStatus"
        )
    except ActionRefusedError as err:
        _LOGGER.debug("GetStatusInfo refused: %s", err)
    except (GatewayError, *MALFORMED) as err:
        _LOGGER.debug("GetStatusInfo unreadable: %s", err)
    except _UNANSWERED as err:
        # A hung (or gone) service is not the one in use: the others are asked.
        return WanConnection(gateway, service, None, None, _unanswered(service, err))
    try:
        answer = await gateway.call(service, "GetExternalIPAddress")
    except ActionRefusedError as err:
        return WanConnection(gateway, service, status, None, err)
    except _UNANSWERED as err:
        return WanConnection(gateway, service, status, None, _unanswered(service, err))
    except GatewayError as err:
        if err.reason is not GatewayReason.INVALID_REPLY:
            raise
        return WanConnection(gateway, service, status, None, err)
    except MALFORMED as err:
        return WanConnection(gateway, service, status, None, invalid_reply(str(err)))
    return WanConnection(gateway, service, status, answer.get("NewExternalIPAddress"))


def _unanswered(service: Service, err: BaseException) -> GatewayError:
    """Why ``service`` gave no (whole) answer, as `gateway_errors` reports it."""
    detail = f"{service.service_type}: {type(err).__name__}"
    if caused_by(err, aiohttp.ClientPayloadError):
        # It answered, but cut short: a broken reply, not a router away.
        return invalid_reply(f"{service.service_type}: the answer ended early")
    if caused_by(err, TimeoutError):
        return GatewayError(GatewayReason.TIMEOUT, detail)
    return GatewayError(GatewayReason.UNREACHABLE, detail)
