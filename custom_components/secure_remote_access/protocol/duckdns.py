"""An asyncio client for the DuckDNS HTTP API (https://www.duckdns.org/spec.jsp).

No Home Assistant imports: the caller hands in an ``aiohttp.ClientSession``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import ipaddress
from typing import Final
import uuid

import aiohttp

from .connection import describe_connection_error
from .names import InvalidDomainError, duckdns_label, normalize_duckdns_domain

DEFAULT_UPDATE_URL: Final = "https://www.duckdns.org/update"
MAX_DOMAINS: Final = 5
DEFAULT_TIMEOUT: Final = 15.0
# DuckDNS clears the TXT record when asked with this value and clear=true.
CLEARED_TXT: Final = "removed"

_MAX_BODY = 4096


class DuckDnsError(Exception):
    """Base class of the errors this client raises."""


class DuckDnsAuthError(DuckDnsError):
    """DuckDNS answered KO: the token or one of the names is wrong."""


class DuckDnsConnectionError(DuckDnsError):
    """DuckDNS could not be reached or gave an answer that is neither OK nor KO."""


class InvalidTokenError(ValueError):
    """A token that does not look like a DuckDNS token (a UUID)."""


@dataclass(frozen=True, slots=True)
class DnsUpdateResult:
    """What DuckDNS recorded after an update request."""

    ipv4: str | None
    ipv6: str | None
    changed: bool


@dataclass(frozen=True, slots=True)
class TxtUpdateResult:
    """What DuckDNS recorded after a TXT request."""

    txt: str | None
    changed: bool


def parse_domains(text: str) -> list[str]:
    """Parse up to five comma-separated DuckDNS names into sorted, unique full names."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise InvalidDomainError("", "empty")
    names = sorted({normalize_duckdns_domain(part) for part in parts})
    if len(names) > MAX_DOMAINS:
        raise InvalidDomainError(str(len(names)), "too_many")
    return names


def normalize_token(token: str) -> str:
    """Return the token in canonical form, or raise when it is not a UUID."""
    candidate = token.strip()
    try:
        parsed = uuid.UUID(candidate)
    except ValueError as err:
        raise InvalidTokenError("token is not a UUID") from err
    if str(parsed) != candidate.lower():
        raise InvalidTokenError("token is not a UUID")
    return str(parsed)


class DuckDnsClient:
    """Talks to DuckDNS for one account token.

    All requests of one client are serialised, so an IP update and a TXT change
    never interleave.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token: str,
        *,
        base_url: str = DEFAULT_UPDATE_URL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Create a client on an existing session (the client never closes it)."""
        self._session = session
        self._token = token
        self._base_url = base_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._lock = asyncio.Lock()

    @property
    def base_url(self) -> str:
        """The update endpoint this client calls."""
        return self._base_url

    async def update(
        self,
        domains: Sequence[str],
        *,
        ipv4: str | None = None,
        ipv6: str | None = None,
    ) -> DnsUpdateResult:
        """Update the addresses of ``domains`` in one request.

        Without ``ipv4`` and ``ipv6`` DuckDNS records the request's source IPv4
        address. Sending ``ipv6`` disables that detection, so callers that want
        both send IPv6 in a request of its own.
        """
        params = {"domains": _domains_param(domains)}
        if ipv4 is not None:
            params["ip"] = str(ipaddress.IPv4Address(ipv4))
        if ipv6 is not None:
            params["ipv6"] = str(ipaddress.IPv6Address(ipv6))
        lines = await self._request(params)
        # Verbose reply: OK, IPv4, IPv6, UPDATED|NOCHANGE.
        if len(lines) < 4 or lines[3] not in ("UPDATED", "NOCHANGE"):
            raise DuckDnsConnectionError("unexpected reply to an update request")
        return DnsUpdateResult(
            ipv4=lines[1] or None,
            ipv6=lines[2] or None,
            changed=lines[3] == "UPDATED",
        )

    async def set_txt(self, domain: str, value: str) -> TxtUpdateResult:
        """Set the TXT record of ``domain`` (shared by every name under it)."""
        if not value or value == CLEARED_TXT:
            raise ValueError("TXT value must be non-empty")
        result = await self._txt_request(domain, {"txt": value})
        if result.txt != value:
            raise DuckDnsConnectionError("DuckDNS did not record the TXT value")
        return result

    async def clear_txt(self, domain: str) -> TxtUpdateResult:
        """Remove the TXT record of ``domain``."""
        result = await self._txt_request(domain, {"txt": CLEARED_TXT, "clear": "true"})
        if result.txt not in (None, "", CLEARED_TXT):
            raise DuckDnsConnectionError("DuckDNS did not clear the TXT value")
        return TxtUpdateResult(txt=None, changed=result.changed)

    async def _txt_request(
        self, domain: str, extra: Mapping[str, str]
    ) -> TxtUpdateResult:
        lines = await self._request({"domains": duckdns_label(domain), **extra})
        # Verbose reply: OK, TXT, UPDATED|NOCHANGE.
        if len(lines) < 3 or lines[2] not in ("UPDATED", "NOCHANGE"):
            raise DuckDnsConnectionError("unexpected reply to a TXT request")
        return TxtUpdateResult(txt=lines[1] or None, changed=lines[2] == "UPDATED")

    async def _request(self, params: Mapping[str, str]) -> list[str]:
        query = {**params, "token": self._token, "verbose": "true"}
        async with self._lock:
            try:
                async with self._session.get(
                    self._base_url,
                    params=query,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    if response.status != 200:
                        raise DuckDnsConnectionError(
                            f"DuckDNS answered HTTP {response.status}"
                        )
                    raw = await response.content.read(_MAX_BODY)
            except (aiohttp.ClientError, TimeoutError) as err:
                raise DuckDnsConnectionError(
                    f"cannot reach DuckDNS: {describe_connection_error(err)}"
                ) from err
        body = raw.decode("utf-8", errors="replace").strip()
        lines = [line.strip() for line in body.splitlines()]
        if lines == ["KO"]:
            raise DuckDnsAuthError("DuckDNS rejected the token or a name")
        if not lines or lines[0] != "OK":
            # Outages return HTML pages: a temporary failure, not a bad token.
            raise DuckDnsConnectionError("DuckDNS answered neither OK nor KO")
        return lines


def _domains_param(domains: Iterable[str]) -> str:
    names = [duckdns_label(domain) for domain in domains]
    if not names:
        raise InvalidDomainError("no domain")
    return ",".join(names)
