"""Read-only UPnP IGD queries: the router's WAN address and its port mappings.

No Home Assistant imports. Built on ``async_upnp_client``; nothing here ever
changes the router (no AddPortMapping, no DeletePortMapping).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

import aiohttp
from async_upnp_client.aiohttp import AiohttpSessionRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.const import HttpRequest, HttpResponse
from async_upnp_client.exceptions import (
    UpnpActionError,
    UpnpCommunicationError,
    UpnpError,
)
from async_upnp_client.profiles.igd import IgdDevice

IGD_SEARCH_TARGETS: Final = tuple(IgdDevice.DEVICE_TYPES)
DEFAULT_TIMEOUT: Final = 10.0
#: The most GetGenericPortMappingEntry requests one query sends.
MAX_MAPPINGS: Final = 16
#: The most GetSpecificPortMappingEntry requests one query sends.
MAX_WANTED: Final = 4
_REQUEST_TIMEOUT: Final = 5
#: The largest description or SOAP answer read (a router's are a few KiB).
MAX_DESCRIPTION_BYTES: Final = 256 * 1024
#: The UPnP errors that end GetGenericPortMappingEntry's list:
#: 713 SpecifiedArrayIndexInvalid, 714 NoSuchEntryInArray.
END_OF_LIST: Final = frozenset({713, 714})


class GatewayReason(StrEnum):
    """Why the router's facts are unknown."""

    NO_GATEWAY = "no_gateway"
    UNREACHABLE = "gateway_unreachable"
    TIMEOUT = "gateway_timeout"
    INVALID_REPLY = "gateway_invalid_reply"
    REFUSED = "upnp_refused"


class GatewayError(Exception):
    """The gateway could not be queried; ``reason`` says why, ``detail`` how."""

    def __init__(self, reason: GatewayReason, detail: str) -> None:
        """Keep the reason and a short detail for logs and attributes."""
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PortMapping:
    """One port mapping of the router."""

    external_port: int
    protocol: str
    internal_port: int
    internal_client: str
    enabled: bool

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

    @property
    def incomplete(self) -> bool:
        """Whether mappings may exist that are not in `mappings`."""
        return self.truncated or self.invalid_entries > 0


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


class BoundedRequester(AiohttpSessionRequester):
    """Refuses what a router has no reason to send, before the XML is parsed.

    The descriptions and SOAP answers are parsed in the event loop: a body
    over ``max_bytes`` (announced in Content-Length or found by reading one
    byte past the bound) is refused unread. Redirects are not followed, and
    only URLs on ``host`` (the description's own) are asked.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        *,
        timeout: int,
        max_bytes: int = MAX_DESCRIPTION_BYTES,
    ) -> None:
        """Ask only ``host``, each request bounded by ``timeout`` seconds."""
        super().__init__(session, with_sleep=False, timeout=timeout)
        self._host = host
        self._max_bytes = max_bytes

    async def _async_http_request(self, http_request: HttpRequest) -> HttpResponse:
        if urlsplit(http_request.url).hostname != self._host:
            raise GatewayError(
                GatewayReason.INVALID_REPLY,
                "the description names URLs on another host",
            )
        async with self._session.request(
            http_request.method,
            http_request.url,
            headers=dict(http_request.headers or {}),
            data=http_request.body,
            timeout=self._timeout,
            allow_redirects=False,
        ) as response:
            if 300 <= response.status < 400:
                raise GatewayError(
                    GatewayReason.INVALID_REPLY, "a redirect (not followed)"
                )
            length = response.content_length
            if length is not None and length > self._max_bytes:
                raise self._too_large()
            body = bytearray()
            while chunk := await response.content.read(self._max_bytes + 1 - len(body)):
                body += chunk
                if len(body) > self._max_bytes:
                    raise self._too_large()
            text = bytes(body).decode(response.get_encoding(), errors="replace")
            return HttpResponse(response.status, response.headers, text)

    def _too_large(self) -> GatewayError:
        return GatewayError(
            GatewayReason.INVALID_REPLY,
            f"an answer over {self._max_bytes // 1024} KiB",
        )


def _as_port(value: object, *, wildcard: bool = False) -> int:
    """A port number; 0 only where the IGD allows it as the wildcard."""
    port = int(str(value))
    if not (0 if wildcard else 1) <= port < 65536:
        raise ValueError(f"port {port} out of range")
    return port


async def query_gateway(
    session: aiohttp.ClientSession,
    location: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT,
    max_mappings: int = MAX_MAPPINGS,
    wanted_ports: Sequence[int] = (),
) -> GatewayFacts:
    """Read the WAN address and up to ``max_mappings`` port mappings.

    When the list has more, the TCP mappings of the external ``wanted_ports``
    (at most `MAX_WANTED`) are asked for by number (GetSpecificPortMappingEntry).
    ``timeout_seconds`` bounds the whole query. Raises `GatewayError`.
    """
    requester = BoundedRequester(
        session,
        urlsplit(location).hostname or "",
        timeout=min(_REQUEST_TIMEOUT, int(timeout_seconds) or 1),
    )
    factory = UpnpFactory(requester, non_strict=True)
    try:
        async with asyncio.timeout(timeout_seconds):
            device = await factory.async_create_device(location)
            if not IgdDevice.is_profile_device(device):
                raise GatewayError(
                    GatewayReason.INVALID_REPLY, "the device is no Internet gateway"
                )
            if not any(
                "WANIPConnection" in service.service_type
                or "WANPPPConnection" in service.service_type
                for service in device.all_services
            ):
                raise GatewayError(
                    GatewayReason.INVALID_REPLY, "the gateway has no WAN connection"
                )
            igd = IgdDevice(device, None)
            try:
                wan = await igd.async_get_external_ip_address()
            except UpnpActionError as err:
                raise GatewayError(
                    GatewayReason.REFUSED, f"GetExternalIPAddress: {err}"
                ) from err
            mappings, truncated, refused, invalid = await _mappings(igd, max_mappings)
            if truncated:
                mappings += await _specific(igd, wanted_ports, mappings)
            wan_address = _address_or_none(wan)
    except TimeoutError as err:
        raise GatewayError(
            GatewayReason.TIMEOUT, f"no complete answer within {timeout_seconds:g} s"
        ) from err
    except (UpnpCommunicationError, aiohttp.ClientError, OSError) as err:
        if _caused_by(err, TimeoutError):
            raise GatewayError(
                GatewayReason.TIMEOUT, f"no answer within {timeout_seconds:g} s"
            ) from err
        refused = _caused_by(err, ConnectionRefusedError)
        raise GatewayError(
            GatewayReason.UNREACHABLE,
            "connection refused" if refused else type(err).__name__,
        ) from err
    except (UpnpError, ValueError, KeyError, TypeError) as err:
        raise GatewayError(
            GatewayReason.INVALID_REPLY, str(err) or type(err).__name__
        ) from err
    return GatewayFacts(
        location=location,
        wan_address=wan_address,
        mappings=mappings,
        local_address=None,
        truncated=truncated,
        mappings_refused=refused,
        invalid_entries=invalid,
        wan_address_hidden=wan is not None and not wan.strip(),
    )


def _caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``err`` or an exception in its chain (or its args) is a ``kind``."""
    seen: set[int] = set()
    stack: list[object] = [err]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        stack.extend((current.__cause__, current.__context__, *current.args))
    return False


def _address_or_none(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError as err:
        raise ValueError(f"the WAN address {text[:40]!r} is no IP address") from err


async def _mappings(
    igd: IgdDevice, max_mappings: int
) -> tuple[tuple[PortMapping, ...], bool, bool, int]:
    """Index 0, 1, ... until the router says the index is invalid.

    Returns the mappings, whether more exist than were read, whether the
    router refused the listing (any other UPnP error: the mappings are
    unknown) and how many entries made no sense (skipped).
    """
    found: list[PortMapping] = []
    invalid = 0
    for index in range(max_mappings):
        try:
            entry = await igd.async_get_generic_port_mapping_entry(index)
        except UpnpActionError as err:
            if err.error_code in END_OF_LIST:
                return tuple(found), False, False, invalid
            return tuple(found), False, True, invalid
        except ValueError, TypeError:
            invalid += 1  # e.g. an internal client that is no IPv4 address
            continue
        if entry is None:
            raise GatewayError(
                GatewayReason.REFUSED, "the gateway lists no port mappings"
            )
        try:
            external = _as_port(entry.external_port, wildcard=True)
            found.append(
                PortMapping(
                    external_port=external,
                    protocol=str(entry.protocol).upper(),
                    # The wildcard external port may come with a wildcard internal one.
                    internal_port=_as_port(entry.internal_port, wildcard=not external),
                    internal_client=str(entry.internal_client),
                    enabled=str(entry.enabled).lower() not in ("0", "false", "no"),
                )
            )
        except ValueError, TypeError:
            invalid += 1
    return tuple(found), True, False, invalid


async def _specific(
    igd: IgdDevice, ports: Sequence[int], known: Sequence[PortMapping]
) -> tuple[PortMapping, ...]:
    """The TCP mappings of external ``ports`` not in ``known``, asked by number."""
    seen = {(m.external_port, m.protocol) for m in known}
    found: list[PortMapping] = []
    for port in list(dict.fromkeys(ports))[:MAX_WANTED]:
        if (port, "TCP") in seen:
            continue
        try:
            entry = await igd.async_get_specific_port_mapping_entry(None, port, "TCP")
        except UpnpActionError, ValueError:
            continue  # 714 NoSuchEntryInArray, or an entry that makes no sense
        if entry is None:
            return tuple(found)  # the gateway has no such action
        found.append(
            PortMapping(
                external_port=port,
                protocol="TCP",
                internal_port=_as_port(entry.internal_port),
                internal_client=str(entry.internal_client),
                enabled=str(entry.enabled).lower() not in ("0", "false", "no"),
            )
        )
    return tuple(found)
