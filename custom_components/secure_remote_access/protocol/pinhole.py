"""IPv6 firewall pinholes for our port (UPnP IGDv2 WANIPv6FirewallControl:1).

No Home Assistant imports. IPv6 has no address translation: a pinhole lets
the internet reach ``internal_client:internal_port`` itself. Routers open
pinholes only to the control point that asks (miniupnpd compares the
request's source address with InternalClient and refuses internal ports
below 1024), so the service must be reached over IPv6 from the address
the pinhole is for.

A pinhole is known by the UniqueID the router gave it. AddPinhole with the
same parameters returns the existing pinhole's id and extends its lease
(IGDv2), so `Pinholes.open` keeps ours alive and `Pinholes.close` finds ours
without trusting a stored id that a restarted router may have given to
another host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import aiohttp

from .port_forward import DEFAULT_TIMEOUT, ForwardError, Refusal, router_errors
from .upnp import (
    IPV6_FIREWALL,
    Gateway,
    Service,
    WanConnection,
    choose_connection,
    open_gateway,
)
from .upnp.soap import Argument

#: WANIPv6FirewallControl's longest pinhole lease.
MAX_PINHOLE_LEASE: Final = 86400
#: Our pinholes' lease: one the keeper forgets closes by itself within it.
PINHOLE_LEASE: Final = 7200
#: The lease of the pinhole `Pinholes.close` opens to learn its id.
CLOSING_LEASE: Final = 60
IANA_TCP: Final = 6
MAX_UNIQUE_ID: Final = 65535
INVALID_ARGS: Final = 402
#: CheckPinholeWorking's "no packet went through it yet".
NO_PACKET_SENT: Final = 709


@dataclass(frozen=True, slots=True)
class PinholeRequest:
    """The pinhole we want: any remote host and port to ours."""

    internal_client: str
    internal_port: int
    lease_seconds: int = PINHOLE_LEASE
    protocol: int = IANA_TCP

    def arguments(self, lease_seconds: int | None = None) -> list[Argument]:
        """AddPinhole's arguments, in their order."""
        return [
            ("RemoteHost", ""),
            ("RemotePort", 0),
            ("InternalClient", self.internal_client),
            ("InternalPort", self.internal_port),
            ("Protocol", self.protocol),
            (
                "LeaseTime",
                self.lease_seconds if lease_seconds is None else lease_seconds,
            ),
        ]


@dataclass(frozen=True, slots=True)
class FirewallStatus:
    """GetFirewallStatus: is the IPv6 firewall on, and does it allow pinholes."""

    enabled: bool
    inbound_allowed: bool


class PinholeTraffic(StrEnum):
    """CheckPinholeWorking's answer."""

    WORKING = "working"
    NO_TRAFFIC_YET = "no_traffic_yet"


def _flag(value: str | None) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


class Pinholes:
    """Opens, keeps, checks and closes our pinholes on one firewall service."""

    def __init__(
        self,
        gateway: Gateway,
        firewall: Service,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Work on ``firewall`` (WANIPv6FirewallControl:1) of ``gateway``."""
        self.gateway = gateway
        self.firewall = firewall
        self._timeout = timeout_seconds

    @classmethod
    def beside(
        cls, connection: WanConnection, *, timeout_seconds: float = DEFAULT_TIMEOUT
    ) -> Pinholes | None:
        """The pinholes of the firewall service beside ``connection`` (None:
        the router offers none, as IGDv1 routers do)."""
        services = connection.gateway.beside(connection, IPV6_FIREWALL)
        if not services:
            return None
        return cls(connection.gateway, services[0], timeout_seconds=timeout_seconds)

    async def _call(
        self, action: str, arguments: Sequence[Argument] = ()
    ) -> dict[str, str]:
        async with router_errors(action, self._timeout):
            return await self.gateway.call(self.firewall, action, arguments)

    async def status(self) -> FirewallStatus:
        """Whether the firewall is on and lets control points open pinholes."""
        found = await self._call("GetFirewallStatus")
        async with router_errors("GetFirewallStatus", self._timeout):
            return FirewallStatus(
                enabled=_flag(found["FirewallEnabled"]),
                inbound_allowed=_flag(found["InboundPinholeAllowed"]),
            )

    async def _add(self, request: PinholeRequest, lease_seconds: int) -> int:
        found = await self._call("AddPinhole", request.arguments(lease_seconds))
        async with router_errors("AddPinhole", self._timeout):
            return int(str(found["UniqueID"]))

    async def open(self, request: PinholeRequest) -> int:
        """Open our pinhole, or extend it when it exists; return its UniqueID.

        The router's answer is read back with UpdatePinhole: an id it does
        not know is `Refusal.NOT_CONFIRMED`.
        """
        unique_id = await self._add(request, request.lease_seconds)
        try:
            await self.update(unique_id, request.lease_seconds)
        except ForwardError as err:
            if err.reason is Refusal.NO_SUCH_PINHOLE:
                raise ForwardError(
                    Refusal.NOT_CONFIRMED,
                    f"the router opened pinhole {unique_id} but does not know it",
                ) from err
            raise
        return unique_id

    async def update(self, unique_id: int, lease_seconds: int) -> None:
        """Give pinhole ``unique_id`` a new lease (`Refusal.NO_SUCH_PINHOLE` if gone).

        Debian's miniupnpd (nftables) answers 402 Invalid Args, not 704,
        for an id it does not know: with arguments checked here first, a
        402 means the same.
        """
        if not (
            0 <= unique_id <= MAX_UNIQUE_ID and 0 < lease_seconds <= MAX_PINHOLE_LEASE
        ):
            raise ForwardError(
                Refusal.INVALID_ARGS,
                f"UpdatePinhole: id {unique_id}, lease {lease_seconds} s out of range",
            )
        try:
            await self._call(
                "UpdatePinhole",
                [("UniqueID", unique_id), ("NewLeaseTime", lease_seconds)],
            )
        except ForwardError as err:
            if err.code == INVALID_ARGS:
                raise ForwardError(
                    Refusal.NO_SUCH_PINHOLE, err.detail, err.code
                ) from err
            raise

    async def traffic(self, unique_id: int) -> PinholeTraffic:
        """Whether packets went through pinhole ``unique_id`` (CheckPinholeWorking)."""
        try:
            found = await self._call("CheckPinholeWorking", [("UniqueID", unique_id)])
        except ForwardError as err:
            if err.code == NO_PACKET_SENT:
                return PinholeTraffic.NO_TRAFFIC_YET
            raise
        working = _flag(found.get("IsWorking"))
        return PinholeTraffic.WORKING if working else PinholeTraffic.NO_TRAFFIC_YET

    async def close(self, request: PinholeRequest) -> int:
        """Close our pinhole; return the UniqueID it had.

        Its id is learnt by asking for the same pinhole again (with a short
        lease, so that nothing lasts if the router vanishes before the
        deletion), then it is deleted and the deletion read back.
        """
        unique_id = await self._add(request, CLOSING_LEASE)
        try:
            await self._call("DeletePinhole", [("UniqueID", unique_id)])
        except ForwardError as err:
            if err.reason is not Refusal.NO_SUCH_PINHOLE:
                raise
        try:
            await self.update(unique_id, CLOSING_LEASE)
        except ForwardError as err:
            if err.code is not None:  # any refusal: the router has it no more
                return unique_id
            raise
        raise ForwardError(
            Refusal.NOT_CONFIRMED,
            f"the router accepted the deletion of pinhole {unique_id} but still has it",
        )


@asynccontextmanager
async def open_pinholes(
    session: aiohttp.ClientSession, location: str, *, timeout_seconds: float
) -> AsyncIterator[Pinholes]:
    """The `Pinholes` beside the connection in use of the gateway at ``location``.

    ``session`` must send from the pinhole's own IPv6 address (routers open
    pinholes only for the control point that asks). The block is bounded
    by ``timeout_seconds``; every failure in it is a `ForwardError`, a
    router without the service `Refusal.NO_PINHOLE_SERVICE`.
    """
    async with (
        router_errors("the gateway", timeout_seconds),
        open_gateway(session, location, timeout_seconds=timeout_seconds) as gateway,
    ):
        connection = await choose_connection(gateway)
        pinholes = Pinholes.beside(connection, timeout_seconds=timeout_seconds)
        if pinholes is None:
            raise ForwardError(
                Refusal.NO_PINHOLE_SERVICE,
                "the router offers no IPv6 firewall control (WANIPv6FirewallControl)",
            )
        yield pinholes
