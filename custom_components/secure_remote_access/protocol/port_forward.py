"""Port mappings we add on the home router through UPnP IGD, and only ours.

No Home Assistant imports. A `PortForwarder` works on the WAN connection
service the caller chose (async_upnp_client's ``UpnpService`` of
WANIPConnection:1/2 or WANPPPConnection:1). It changes no mapping it cannot
prove to be ours (description and internal client; see `Owner`), reads
every change back, and reports every refusal as a `ForwardError` whose
`Refusal` says why: an add the router accepted but does not list is
`Refusal.NOT_CONFIRMED`, never a success.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
import ipaddress
from typing import Any, Final

import aiohttp
from async_upnp_client.client import UpnpService
from async_upnp_client.exceptions import (
    UpnpActionError,
    UpnpCommunicationError,
    UpnpError,
)

from .remote_access import Hairpin, hairpin_probe
from .upnp import GatewayError, GatewayReason, _caused_by

DEFAULT_TIMEOUT: Final = 10.0
#: What we ask for: a mapping nobody renews is gone within the hour.
DEFAULT_LEASE: Final = 3600
#: IGDv2's longest lease; routers give it for 0 ("permanent").
MAX_LEASE: Final = 604800
#: Never renew more often than this, whatever lease the router granted.
MIN_RENEW_DELAY: Final = 30
TCP: Final = "TCP"


class Refusal(StrEnum):
    """Why a change was not made (or not confirmed)."""

    INVALID_ARGS = "invalid_args"  # 402, 600, 601
    ACTION_FAILED = "action_failed"  # 501
    NOT_AUTHORIZED = "not_authorized"  # 606: permission rules, secure mode
    PORT_TAKEN = "port_taken"  # 718, or a mapping that is not ours
    SAME_PORT_REQUIRED = "same_port_required"  # 724
    ONLY_PERMANENT_LEASES = "only_permanent_leases"  # 725
    REMOTE_HOST_WILDCARD_ONLY = "remote_host_wildcard_only"  # 726
    EXTERNAL_PORT_WILDCARD_ONLY = "external_port_wildcard_only"  # 727
    NO_PORTS_AVAILABLE = "no_ports_available"  # 728
    CONFLICT_WITH_OTHER_MECHANISMS = "conflict_with_other_mechanisms"  # 729
    INTERNAL_PORT_WILDCARD = "internal_port_wildcard"  # 732
    PINHOLE_SPACE_EXHAUSTED = "pinhole_space_exhausted"  # 701
    FIREWALL_DISABLED = "firewall_disabled"  # 702
    INBOUND_PINHOLE_NOT_ALLOWED = "inbound_pinhole_not_allowed"  # 703
    NO_SUCH_PINHOLE = "no_such_pinhole"  # 704
    PROTOCOL_NOT_SUPPORTED = "protocol_not_supported"  # 705
    UPNP_ERROR = "upnp_error"  # any other UPnP error code
    NOT_SUPPORTED = "not_supported"  # the router's service has no such action
    NOT_OURS = "not_ours"  # we never delete another host's or program's mapping
    NOT_CONFIRMED = "not_confirmed"  # accepted, but the read-back disagrees
    UNREACHABLE = GatewayReason.UNREACHABLE.value
    TIMEOUT = GatewayReason.TIMEOUT.value
    INVALID_REPLY = GatewayReason.INVALID_REPLY.value


_BY_CODE: Final[Mapping[int, Refusal]] = {
    402: Refusal.INVALID_ARGS,
    501: Refusal.ACTION_FAILED,
    600: Refusal.INVALID_ARGS,
    601: Refusal.INVALID_ARGS,
    606: Refusal.NOT_AUTHORIZED,
    701: Refusal.PINHOLE_SPACE_EXHAUSTED,
    702: Refusal.FIREWALL_DISABLED,
    703: Refusal.INBOUND_PINHOLE_NOT_ALLOWED,
    704: Refusal.NO_SUCH_PINHOLE,
    705: Refusal.PROTOCOL_NOT_SUPPORTED,
    718: Refusal.PORT_TAKEN,
    724: Refusal.SAME_PORT_REQUIRED,
    725: Refusal.ONLY_PERMANENT_LEASES,
    726: Refusal.REMOTE_HOST_WILDCARD_ONLY,
    727: Refusal.EXTERNAL_PORT_WILDCARD_ONLY,
    728: Refusal.NO_PORTS_AVAILABLE,
    729: Refusal.CONFLICT_WITH_OTHER_MECHANISMS,
    732: Refusal.INTERNAL_PORT_WILDCARD,
}
#: GetSpecificPortMappingEntry's "no such mapping".
NO_SUCH_ENTRY: Final = 714
#: GetGenericPortMappingEntry's end of the list: 713 SpecifiedArrayIndexInvalid, 714.
END_OF_LIST: Final = frozenset({713, NO_SUCH_ENTRY})
#: The most list entries read to find the port AddAnyPortMapping reserved.
MAX_LISTED: Final = 64
_BY_GATEWAY_REASON: Final[Mapping[GatewayReason, Refusal]] = {
    GatewayReason.UNREACHABLE: Refusal.UNREACHABLE,
    GatewayReason.TIMEOUT: Refusal.TIMEOUT,
}


class ForwardError(Exception):
    """A change the router refused, or whose outcome is unknown or unconfirmed.

    ``code`` is the router's UPnP error code when it sent one.
    """

    def __init__(self, reason: Refusal, detail: str, code: int | None = None) -> None:
        """Keep the reason, a short detail for the log and the UPnP code."""
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.code = code


def same_address(first: str, second: str) -> bool:
    """Whether two address texts name the same address (or are the same text)."""
    try:
        return ipaddress.ip_address(first.strip()) == ipaddress.ip_address(
            second.strip()
        )
    except ValueError:
        return first.strip().lower() == second.strip().lower()


@dataclass(frozen=True, slots=True)
class Owner:
    """How we recognise our mapping: its description and its internal client."""

    description: str
    internal_client: str


@dataclass(frozen=True, slots=True)
class MappingRequest:
    """The mapping we want on the router."""

    external_port: int
    internal_port: int
    owner: Owner
    lease_seconds: int = DEFAULT_LEASE
    protocol: str = TCP

    def arguments(self) -> dict[str, str | int | bool]:
        """AddPortMapping's (and AddAnyPortMapping's) arguments."""
        return {
            "NewRemoteHost": "",
            "NewExternalPort": self.external_port,
            "NewProtocol": self.protocol,
            "NewInternalPort": self.internal_port,
            "NewInternalClient": self.owner.internal_client,
            "NewEnabled": True,
            "NewPortMappingDescription": self.owner.description,
            "NewLeaseDuration": self.lease_seconds,
        }


@dataclass(frozen=True, slots=True)
class RouterEntry:
    """A mapping as the router reports it; ``lease_seconds`` is what is left
    (0: permanent), so two reads of one mapping are equal whatever it says."""

    external_port: int
    protocol: str
    internal_port: int
    internal_client: str
    description: str
    enabled: bool
    lease_seconds: int = field(compare=False)

    def held_by(self, internal_client: str) -> bool:
        """Whether it forwards to ``internal_client``."""
        return same_address(self.internal_client, internal_client)

    def belongs_to(self, owner: Owner) -> bool:
        """Whether it is ``owner``'s: same internal client and description."""
        return self.held_by(owner.internal_client) and (
            self.description == owner.description
        )

    def serves(self, request: MappingRequest) -> bool:
        """Whether it is ``request``'s mapping, enabled, to the requested port."""
        return (
            self.belongs_to(request.owner)
            and self.enabled
            and self.internal_port == request.internal_port
        )

    def as_dict(self) -> dict[str, str | int | bool]:
        """JSON-friendly form."""
        return {
            "external_port": self.external_port,
            "protocol": self.protocol,
            "internal_port": self.internal_port,
            "internal_client": self.internal_client,
            "description": self.description,
            "enabled": self.enabled,
            "lease_seconds": self.lease_seconds,
        }


class Ensured(StrEnum):
    """What `PortForwarder.ensure` did."""

    PRESENT = "present"  # ours, with enough lease left: nothing sent
    EXTENDED = "extended"  # ours, renewed before its lease ends
    ADDED = "added"  # missing (new, or the router forgot it): added


@dataclass(frozen=True, slots=True)
class EnsureResult:
    """The mapping as confirmed on the router, and what it took."""

    entry: RouterEntry
    action: Ensured


def renewal_delay(lease_seconds: int) -> float | None:
    """Seconds until a mapping with ``lease_seconds`` left should be renewed.

    Halfway through (at least `MIN_RENEW_DELAY`); None for a permanent one.
    """
    if lease_seconds <= 0:
        return None
    return max(MIN_RENEW_DELAY, lease_seconds / 2)


@asynccontextmanager
async def router_errors(action: str, timeout_seconds: float) -> AsyncIterator[None]:
    """Bound one exchange with the router; every failure becomes a `ForwardError`."""
    try:
        async with asyncio.timeout(timeout_seconds):
            yield
    except UpnpActionError as err:
        code = err.error_code
        reason = _BY_CODE.get(code or 0, Refusal.UPNP_ERROR)
        raise ForwardError(
            reason, f"{action}: UPnP error {code} {err.error_desc or ''}".strip(), code
        ) from err
    except GatewayError as err:
        reason = _BY_GATEWAY_REASON.get(err.reason, Refusal.INVALID_REPLY)
        raise ForwardError(reason, f"{action}: {err.detail}") from err
    except TimeoutError as err:
        raise ForwardError(
            Refusal.TIMEOUT, f"{action}: no answer within {timeout_seconds:g} s"
        ) from err
    except (UpnpCommunicationError, aiohttp.ClientError, OSError) as err:
        if _caused_by(err, TimeoutError):
            raise ForwardError(
                Refusal.TIMEOUT, f"{action}: no answer within {timeout_seconds:g} s"
            ) from err
        refused = _caused_by(err, ConnectionRefusedError)
        raise ForwardError(
            Refusal.UNREACHABLE,
            f"{action}: {'connection refused' if refused else type(err).__name__}",
        ) from err
    except (UpnpError, ValueError, KeyError, TypeError) as err:
        raise ForwardError(
            Refusal.INVALID_REPLY, f"{action}: {str(err)[:200] or type(err).__name__}"
        ) from err


async def call_action(
    service: UpnpService, action: str, timeout_seconds: float, **arguments: Any
) -> Mapping[str, Any]:
    """Call ``action`` of ``service``; `Refusal.NOT_SUPPORTED` when it has none."""
    if not service.has_action(action):
        raise ForwardError(
            Refusal.NOT_SUPPORTED, f"{service.service_type} has no {action}"
        )
    async with router_errors(action, timeout_seconds):
        return await service.async_call_action(action, **arguments)


class PortForwarder:
    """Adds, reads, keeps and removes our mappings on one WAN connection service."""

    def __init__(
        self, connection: UpnpService, *, timeout_seconds: float = DEFAULT_TIMEOUT
    ) -> None:
        """Work on ``connection``; each exchange is bounded by ``timeout_seconds``."""
        self.connection = connection
        self._timeout = timeout_seconds

    @property
    def picks_free_ports(self) -> bool:
        """Whether the router can choose a free external port (IGDv2 AddAnyPortMapping)."""
        return self.connection.has_action("AddAnyPortMapping")

    async def _call(self, action: str, **arguments: Any) -> Mapping[str, Any]:
        return await call_action(self.connection, action, self._timeout, **arguments)

    async def read(self, external_port: int, protocol: str = TCP) -> RouterEntry | None:
        """The router's mapping of ``external_port``, or None (GetSpecificPortMappingEntry)."""
        action = "GetSpecificPortMappingEntry"
        try:
            found = await self._call(
                action,
                NewRemoteHost="",
                NewExternalPort=external_port,
                NewProtocol=protocol,
            )
        except ForwardError as err:
            if err.code == NO_SUCH_ENTRY:
                return None
            raise
        async with router_errors(action, self._timeout):
            return _entry(found, external_port, protocol)

    async def _ports_serving(self, request: MappingRequest) -> set[int]:
        """External ports of the listed mappings that serve ``request``."""
        ports: set[int] = set()
        action = "GetGenericPortMappingEntry"
        for index in range(MAX_LISTED):
            try:
                found = await self._call(action, NewPortMappingIndex=index)
            except ForwardError as err:
                if err.code in END_OF_LIST:
                    break
                raise
            async with router_errors(action, self._timeout):
                entry = _entry(
                    found, int(found["NewExternalPort"]), str(found["NewProtocol"])
                )
            if entry.protocol.upper() == request.protocol and entry.serves(request):
                ports.add(entry.external_port)
        return ports

    def _taken(self, entry: RouterEntry) -> ForwardError:
        return ForwardError(
            Refusal.PORT_TAKEN,
            f"external port {entry.external_port} goes to {entry.internal_client}:"
            f"{entry.internal_port} ({entry.description!r})",
            718,
        )

    async def _confirm(
        self, request: MappingRequest, external_port: int
    ) -> RouterEntry:
        entry = await self.read(external_port, request.protocol)
        if entry is None or not entry.serves(request):
            raise ForwardError(
                Refusal.NOT_CONFIRMED,
                f"the router accepted external port {external_port} but lists "
                + (f"{entry.as_dict()}" if entry else "no such mapping"),
            )
        return entry

    async def _add(self, request: MappingRequest) -> RouterEntry:
        await self._call("AddPortMapping", **request.arguments())
        return await self._confirm(request, request.external_port)

    async def add(self, request: MappingRequest) -> RouterEntry:
        """Add (or renew) our mapping; never over a mapping that is not ours.

        A mapping of the port by another host or with another description
        (another program, another entry) is `Refusal.PORT_TAKEN`.
        """
        current = await self.read(request.external_port, request.protocol)
        if current is not None and not current.belongs_to(request.owner):
            raise self._taken(current)
        return await self._add(request)

    async def add_any(self, request: MappingRequest) -> RouterEntry:
        """Our mapping on the requested external port or, when that is taken,
        one the router picks (IGDv2 AddAnyPortMapping): the entry says which.
        """
        current = await self.read(request.external_port, request.protocol)
        if current is not None and current.belongs_to(request.owner):
            return await self._add(request)
        action = "AddAnyPortMapping"
        # miniupnpd 2.3 answers NewReservedPort but its SCPD names the out
        # argument NewExternalPort, so the client drops it: find the new
        # mapping in the list instead.
        named = self.picks_free_ports and (
            self.connection.action(action).argument("NewReservedPort", "out")
            is not None
        )
        before = set() if named else await self._ports_serving(request)
        found = await self._call(action, **request.arguments())
        if named:
            async with router_errors(action, self._timeout):
                reserved = int(found["NewReservedPort"])
            return await self._confirm(request, reserved)
        added = await self._ports_serving(request) - before
        if len(added) != 1:
            raise ForwardError(
                Refusal.NOT_CONFIRMED,
                f"the router accepted {action} but lists {len(added)} new mappings",
            )
        return await self._confirm(request, added.pop())

    async def ensure(
        self, request: MappingRequest, *, renew_below: int | None = None
    ) -> EnsureResult:
        """Keep our mapping: add it when missing, renew it when less than
        ``renew_below`` seconds (default: half the requested lease) are left.
        """
        threshold = request.lease_seconds // 2 if renew_below is None else renew_below
        current = await self.read(request.external_port, request.protocol)
        if current is None:
            return EnsureResult(await self._add(request), Ensured.ADDED)
        if not current.belongs_to(request.owner):
            raise self._taken(current)
        if current.serves(request) and (
            current.lease_seconds == 0 or current.lease_seconds > threshold
        ):
            return EnsureResult(current, Ensured.PRESENT)
        return EnsureResult(await self._add(request), Ensured.EXTENDED)

    async def remove(
        self,
        external_port: int,
        protocol: str = TCP,
        *,
        internal_client: str,
        description: str | None = None,
    ) -> RouterEntry | None:
        """Delete the mapping of ``external_port`` if it forwards to
        ``internal_client`` (and has ``description``, when given).

        Returns the removed mapping, None when there was none; a mapping of
        another host or program is `Refusal.NOT_OURS` and left alone.
        """
        current = await self.read(external_port, protocol)
        if current is None:
            return None
        if not current.held_by(internal_client) or (
            description is not None and current.description != description
        ):
            raise ForwardError(
                Refusal.NOT_OURS,
                f"external port {external_port} goes to {current.internal_client}:"
                f"{current.internal_port} ({current.description!r})",
            )
        try:
            await self._call(
                "DeletePortMapping",
                NewRemoteHost="",
                NewExternalPort=external_port,
                NewProtocol=protocol,
            )
        except ForwardError as err:
            if err.code != NO_SUCH_ENTRY:  # gone meanwhile: what we wanted
                raise
        after = await self.read(external_port, protocol)
        if after is not None and after.held_by(internal_client):
            raise ForwardError(
                Refusal.NOT_CONFIRMED,
                f"the router accepted the deletion of external port {external_port}"
                " but still lists it",
            )
        return current


def _entry(found: Mapping[str, Any], external_port: int, protocol: str) -> RouterEntry:
    """A mapping from a Get*PortMappingEntry answer (raises on nonsense)."""
    return RouterEntry(
        external_port=external_port,
        protocol=protocol,
        internal_port=int(found["NewInternalPort"]),
        internal_client=str(found["NewInternalClient"]),
        description=str(found.get("NewPortMappingDescription") or ""),
        enabled=str(found.get("NewEnabled", "1")).lower() not in ("0", "false", "no"),
        lease_seconds=int(found.get("NewLeaseDuration") or 0),
    )


@dataclass(frozen=True, slots=True)
class IncomingCheck:
    """Whether the forwarded port reaches us: the router's entry and a TLS handshake."""

    entry: RouterEntry | None
    hairpin: Hairpin

    @property
    def reached_us(self) -> bool:
        """Our mapping is there and the handshake met our certificate."""
        return self.entry is not None and self.hairpin is Hairpin.REACHED_US


async def check_incoming(
    forwarder: PortForwarder,
    request: MappingRequest,
    public_address: str,
    server_name: str,
    our_fingerprints: frozenset[str],
) -> IncomingCheck:
    """Read our mapping back, then connect to ``public_address`` on its
    external port with ``server_name`` (the hairpin probe): is it us?

    A router without NAT loopback answers `Hairpin.NO_ANSWER` from the LAN.
    """
    entry = await forwarder.read(request.external_port, request.protocol)
    if entry is None or not entry.serves(request):
        return IncomingCheck(None, Hairpin.NOT_TRIED)
    found = await hairpin_probe(
        public_address, (entry.external_port,), server_name, our_fingerprints
    )
    return IncomingCheck(entry, found)
