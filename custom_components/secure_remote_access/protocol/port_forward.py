"""Port mappings we add on the home router through UPnP IGD, and only ours.

No Home Assistant imports. A `PortForwarder` works on the WAN connection
in use (`upnp.WanConnection`: WANIPConnection:1/2 or WANPPPConnection:1). It changes no mapping it cannot
prove to be ours (description and internal client; see `Owner`), reads
every change back, and reports every refusal as a `ForwardError` whose
`Refusal` says why: an add the router accepted but does not list is
`Refusal.NOT_CONFIRMED`, never a success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
import ipaddress
from typing import Final

import aiohttp

from .remote_access import Hairpin, hairpin_probe
from .upnp import (
    ActionRefusedError,
    GatewayError,
    GatewayReason,
    PortMapping,
    WanConnection,
    choose_connection,
    open_gateway,
)
from .upnp.errors import gateway_errors
from .upnp.query import NO_SUCH_ENTRY, TCP, mapping_from
from .upnp.soap import Argument

DEFAULT_TIMEOUT: Final = 10.0
#: What we ask for: a mapping nobody renews is gone within the hour.
DEFAULT_LEASE: Final = 3600
#: IGDv2's longest lease; routers give it for 0 ("permanent").
MAX_LEASE: Final = 604800
#: Never renew more often than this, whatever lease the router granted.
MIN_RENEW_DELAY: Final = 30
#: The shortest cut of our description that still names it ("Secure Remot").
MIN_CUT_DESCRIPTION: Final = 12
#: The connection service that has AddAnyPortMapping.
IGD_V2_CONNECTION: Final = "urn:schemas-upnp-org:service:WANIPConnection:2"


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
    NO_PINHOLE_SERVICE = "no_pinhole_service"  # no WANIPv6FirewallControl
    UPNP_ERROR = "upnp_error"  # any other UPnP error code
    NOT_SUPPORTED = "not_supported"  # 401, 602: the service has no such action
    NOT_OURS = "not_ours"  # we never delete another host's or program's mapping
    NOT_CONFIRMED = "not_confirmed"  # accepted, but the read-back disagrees
    UNREACHABLE = GatewayReason.UNREACHABLE.value
    TIMEOUT = GatewayReason.TIMEOUT.value
    INVALID_REPLY = GatewayReason.INVALID_REPLY.value


_BY_CODE: Final[Mapping[int, Refusal]] = {
    401: Refusal.NOT_SUPPORTED,
    402: Refusal.INVALID_ARGS,
    501: Refusal.ACTION_FAILED,
    600: Refusal.INVALID_ARGS,
    601: Refusal.INVALID_ARGS,
    602: Refusal.NOT_SUPPORTED,
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

    def arguments(self) -> list[Argument]:
        """AddPortMapping's (and AddAnyPortMapping's) arguments, in their order."""
        return [
            ("NewRemoteHost", ""),
            ("NewExternalPort", self.external_port),
            ("NewProtocol", self.protocol),
            ("NewInternalPort", self.internal_port),
            ("NewInternalClient", self.owner.internal_client),
            ("NewEnabled", True),
            ("NewPortMappingDescription", self.owner.description),
            ("NewLeaseDuration", self.lease_seconds),
        ]


def held_by(entry: PortMapping, internal_client: str) -> bool:
    """Whether ``entry`` forwards to ``internal_client``."""
    return same_address(entry.internal_client, internal_client)


def belongs_to(entry: PortMapping, owner: Owner) -> bool:
    """Whether ``entry`` is ``owner``'s: same internal client and description."""
    return held_by(entry, owner.internal_client) and (
        entry.description == owner.description
    )


def named(listed: str, description: str) -> bool:
    """Whether a router lists ``description`` as ``listed``, maybe cut short.

    Some routers keep only the first characters of a description: enough
    of ours to tell it apart (`MIN_CUT_DESCRIPTION`) still names it when
    removing what we added (never when keeping: that needs the whole name).
    """
    if listed == description:
        return True
    return len(listed) >= MIN_CUT_DESCRIPTION and description.startswith(listed)


def serves(entry: PortMapping, request: MappingRequest) -> bool:
    """Whether ``entry`` is ``request``'s mapping, enabled, to the requested port."""
    return (
        belongs_to(entry, request.owner)
        and entry.enabled
        and entry.internal_port == request.internal_port
    )


def _described(entry: PortMapping) -> str:
    return (
        f"{entry.internal_client}:{entry.internal_port} ({entry.description!r}"
        f"{'' if entry.enabled else ', disabled'})"
    )


class Ensured(StrEnum):
    """What `PortForwarder.ensure` did."""

    PRESENT = "present"  # ours, with enough lease left: nothing sent
    EXTENDED = "extended"  # ours, renewed before its lease ends
    ADDED = "added"  # missing (new, or the router forgot it): added


@dataclass(frozen=True, slots=True)
class EnsureResult:
    """The mapping as confirmed on the router, and what it took."""

    entry: PortMapping
    action: Ensured


def renewal_delay(lease_seconds: int) -> float | None:
    """Seconds until a mapping with ``lease_seconds`` left should be renewed.

    Halfway through (at least `MIN_RENEW_DELAY`); None for a permanent one.
    """
    if lease_seconds <= 0:
        return None
    return max(MIN_RENEW_DELAY, lease_seconds / 2)


def refusal(action: str, err: ActionRefusedError) -> ForwardError:
    """The router's UPnP error (or HTTP refusal) as a `ForwardError`."""
    reason = _BY_CODE.get(err.code or 0, Refusal.UPNP_ERROR)
    if err.code is None:
        reason = Refusal.NOT_AUTHORIZED
    detail = f"{action}: UPnP error {err.code} {err.description}".strip()
    return ForwardError(reason, detail, err.code)


@asynccontextmanager
async def router_errors(action: str, timeout_seconds: float) -> AsyncIterator[None]:
    """Bound one exchange with the router; every failure becomes a `ForwardError`."""
    try:
        async with gateway_errors(timeout_seconds):
            try:
                yield
            except ActionRefusedError as err:
                raise refusal(action, err) from err
    except GatewayError as err:
        reason = _BY_GATEWAY_REASON.get(err.reason, Refusal.INVALID_REPLY)
        raise ForwardError(reason, f"{action}: {err.detail}") from err


class PortForwarder:
    """Adds, reads, keeps and removes our mappings on one WAN connection."""

    def __init__(
        self, connection: WanConnection, *, timeout_seconds: float = DEFAULT_TIMEOUT
    ) -> None:
        """Work on ``connection``; each exchange is bounded by ``timeout_seconds``."""
        self.connection = connection
        self._timeout = timeout_seconds

    @property
    def picks_free_ports(self) -> bool:
        """Whether the router can choose a free external port (IGDv2 AddAnyPortMapping)."""
        return self.connection.service.service_type == IGD_V2_CONNECTION

    async def _call(self, action: str, arguments: Sequence[Argument]) -> dict[str, str]:
        async with router_errors(action, self._timeout):
            return await self.connection.call(action, arguments)

    async def read(self, external_port: int, protocol: str = TCP) -> PortMapping | None:
        """The router's mapping of ``external_port``, or None (GetSpecificPortMappingEntry)."""
        action = "GetSpecificPortMappingEntry"
        try:
            found = await self._call(
                action,
                [
                    ("NewRemoteHost", ""),
                    ("NewExternalPort", external_port),
                    ("NewProtocol", protocol),
                ],
            )
        except ForwardError as err:
            if err.code == NO_SUCH_ENTRY:
                return None
            raise
        async with router_errors(action, self._timeout):
            return mapping_from(found, external_port, protocol)

    def _taken(self, entry: PortMapping) -> ForwardError:
        return ForwardError(
            Refusal.PORT_TAKEN,
            f"external port {entry.external_port} goes to {_described(entry)}",
            718,
        )

    async def _confirm(
        self, request: MappingRequest, external_port: int
    ) -> PortMapping:
        entry = await self.read(external_port, request.protocol)
        if entry is None or not serves(entry, request):
            raise ForwardError(
                Refusal.NOT_CONFIRMED,
                f"the router accepted external port {external_port} but lists "
                + (_described(entry) if entry else "no such mapping"),
            )
        return entry

    async def _add(self, request: MappingRequest) -> PortMapping:
        await self._call("AddPortMapping", request.arguments())
        return await self._confirm(request, request.external_port)

    async def add(self, request: MappingRequest) -> PortMapping:
        """Add (or renew) our mapping; never over a mapping that is not ours.

        A mapping of the port by another host or with another description
        (another program, another entry) is `Refusal.PORT_TAKEN`.
        """
        current = await self.read(request.external_port, request.protocol)
        if current is not None and not belongs_to(current, request.owner):
            raise self._taken(current)
        try:
            return await self._add(request)
        except ForwardError as err:
            if err.reason is not Refusal.PORT_TAKEN:
                raise
            holder = await self.read(request.external_port, request.protocol)
            if holder is not None and not belongs_to(holder, request.owner):
                raise self._taken(holder) from err
            if holder is not None or self.picks_free_ports:
                # IGDv2 refuses by its rules with 606: its 718 for a port no
                # listed mapping holds is a forward it does not list (made
                # in its web interface) or a port it serves itself.
                raise
            # Old IGDv1 routers (miniupnpd before IGDv2) answer 718, not 606,
            # for a port their permission rules refuse (and for a port the
            # router itself uses: the words say both).
            raise ForwardError(
                Refusal.NOT_AUTHORIZED,
                f"the router answered 718 for external port {request.external_port} "
                "but no mapping holds it: its rules refuse the port",
                err.code,
            ) from err

    async def add_any(self, request: MappingRequest) -> PortMapping:
        """Our mapping on the requested external port or, when that is taken,
        one the router picks (IGDv2 AddAnyPortMapping): the entry says which.
        """
        current = await self.read(request.external_port, request.protocol)
        if current is not None and belongs_to(current, request.owner):
            return await self._add(request)
        action = "AddAnyPortMapping"
        if not self.picks_free_ports:
            raise ForwardError(
                Refusal.NOT_SUPPORTED,
                f"{self.connection.service.service_type} has no {action}",
            )
        found = await self._call(action, request.arguments())
        # The standard names it NewReservedPort (miniupnpd 2.3's SCPD says
        # NewExternalPort but it answers NewReservedPort).
        reserved = found.get("NewReservedPort") or found.get("NewExternalPort") or ""
        if not reserved.strip().isdigit():
            raise ForwardError(
                Refusal.NOT_CONFIRMED,
                f"the router accepted {action} but named no port ({reserved[:20]!r})",
            )
        return await self._confirm(request, int(reserved))

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
        if not belongs_to(current, request.owner):
            raise self._taken(current)
        if serves(current, request) and (
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
        internal_port: int | None = None,
    ) -> PortMapping | None:
        """Delete the mapping of ``external_port`` if it forwards to
        ``internal_client`` (on ``internal_port`` and with ``description``,
        when given).

        Returns the removed mapping, None when there was none; a mapping of
        another host or program, or another forward on the same external
        port, is `Refusal.NOT_OURS` and left alone.
        """
        current = await self.read(external_port, protocol)
        if current is None:
            return None
        if (
            not held_by(current, internal_client)
            or (description is not None and not named(current.description, description))
            or (internal_port is not None and current.internal_port != internal_port)
        ):
            raise ForwardError(
                Refusal.NOT_OURS,
                f"external port {external_port} goes to {_described(current)}",
            )
        try:
            await self._call(
                "DeletePortMapping",
                [
                    ("NewRemoteHost", ""),
                    ("NewExternalPort", external_port),
                    ("NewProtocol", protocol),
                ],
            )
        except ForwardError as err:
            if err.code != NO_SUCH_ENTRY:  # gone meanwhile: what we wanted
                raise
        after = await self.read(external_port, protocol)
        if after is not None and held_by(after, internal_client):
            raise ForwardError(
                Refusal.NOT_CONFIRMED,
                f"the router accepted the deletion of external port {external_port}"
                " but still lists it",
            )
        return current


@asynccontextmanager
async def open_forwarder(
    session: aiohttp.ClientSession, location: str, *, timeout_seconds: float
) -> AsyncIterator[PortForwarder]:
    """A `PortForwarder` on the connection in use of the gateway at ``location``.

    The block is bounded by ``timeout_seconds``; every failure in it,
    reading the description included, is a `ForwardError`.
    """
    async with (
        router_errors("the gateway", timeout_seconds),
        open_gateway(session, location, timeout_seconds=timeout_seconds) as gateway,
    ):
        connection = await choose_connection(gateway)
        yield PortForwarder(connection, timeout_seconds=timeout_seconds)


@dataclass(frozen=True, slots=True)
class IncomingCheck:
    """Whether the forwarded port reaches us: the router's entry and a TLS handshake."""

    entry: PortMapping | None
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
    if entry is None or not serves(entry, request):
        return IncomingCheck(None, Hairpin.NOT_TRIED)
    found = await hairpin_probe(
        public_address, (entry.external_port,), server_name, our_fingerprints
    )
    return IncomingCheck(entry, found)
