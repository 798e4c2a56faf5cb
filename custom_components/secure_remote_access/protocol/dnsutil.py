"""DNS queries with aiodns: fresh channels, the CNAME chase, authoritative servers.

No Home Assistant imports. Used by the delegation check and the dns-01
propagation checker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
import ipaddress
from typing import Final

import aiodns
import pycares

from .names import clean_name

MAX_CNAME_DEPTH: Final = 8
DEFAULT_QUERY_TIMEOUT: Final = 3.0
#: What NXDOMAIN and NODATA answers look like: no records at all.
EMPTY_RESULT: Final = pycares.DNSResult(answer=[], authority=[], additional=[])

_NO_DATA: Final = frozenset({aiodns.error.ARES_ENOTFOUND, aiodns.error.ARES_ENODATA})

type Query = Callable[
    [str, str, Sequence[str] | None], Awaitable[pycares.DNSResult | None]
]
"""``(name, qtype, servers) -> result``, None when no server answered."""


def is_no_data(err: aiodns.error.DNSError) -> bool:
    """Whether the error is NXDOMAIN or NODATA, an answer without records."""
    return bool(err.args) and err.args[0] in _NO_DATA


async def fresh_query(
    name: str, qtype: str, nameservers: Sequence[str] | None, query_timeout: float
) -> pycares.DNSResult:
    """One query with a fresh channel: c-ares caches answers per channel, and
    a record the user just fixed must be seen.

    ``nameservers`` are ``"ip"`` or ``"ip:port"``; None uses the system resolver.
    NXDOMAIN and NODATA give `EMPTY_RESULT`; raises aiodns.error.DNSError when
    no server answers.
    """
    resolver = aiodns.DNSResolver(
        nameservers=list(nameservers) if nameservers else None,
        timeout=query_timeout,
        tries=2,
    )
    try:
        return await resolver.query_dns(name, qtype)
    except aiodns.error.DNSError as err:
        if is_no_data(err):
            return EMPTY_RESULT
        raise
    finally:
        await resolver.close()


def cname_target(result: pycares.DNSResult, name: str) -> str | None:
    """The target of the CNAME record of ``name`` in ``result``, normalized."""
    return next(
        (
            clean_name(record.data.cname)
            for record in result.answer
            if record.type == pycares.QUERY_TYPE_CNAME
            and isinstance(record.data, pycares.CNAMERecordData)
            and clean_name(record.name) == name
        ),
        None,
    )


@dataclass(frozen=True, slots=True)
class CnameHop:
    """A step of the chase found a CNAME: go on with ``target``."""

    target: str


async def follow_cnames[T](
    name: str,
    step: Callable[[str], Awaitable[T | CnameHop]],
    exhausted: Callable[[str], T],
    *,
    stop_at_loop: bool = False,
    max_depth: int = MAX_CNAME_DEPTH,
) -> T:
    """Call ``step`` on ``name`` and on each CNAME target it returns.

    Returns the first outcome of ``step`` that is not a `CnameHop`, else
    ``exhausted(last name)`` after ``max_depth`` steps (or, with
    ``stop_at_loop``, as soon as a target was seen before).
    """
    current = name
    seen = {name}
    for _ in range(max_depth):
        outcome = await step(current)
        if not isinstance(outcome, CnameHop):
            return outcome
        if stop_at_loop and outcome.target in seen:
            break
        seen.add(outcome.target)
        current = outcome.target
    return exhausted(current)


async def find_authoritative_servers(name: str, query: Query) -> list[str] | None:
    """Addresses of the name servers of the zone holding ``name``, found with
    ``query`` on the system resolver; None when no zone answers."""
    labels = name.split(".")
    for index in range(len(labels) - 1):
        zone = ".".join(labels[index:])
        result = await query(zone, "NS", None)
        if result is None:
            continue
        hosts = [
            record.data.nsdname
            for record in result.answer
            if record.type == pycares.QUERY_TYPE_NS
            and isinstance(record.data, pycares.NSRecordData)
            and clean_name(record.name) == zone
        ]
        if not hosts:
            continue
        addresses: list[str] = []
        for qtype in ("A", "AAAA"):  # IPv6 only when no server has an IPv4 address
            for host in hosts:
                answer = await query(host, qtype, None)
                if answer is None:
                    continue
                addresses.extend(
                    record.data.addr
                    for record in answer.answer
                    if record.type in (pycares.QUERY_TYPE_A, pycares.QUERY_TYPE_AAAA)
                    and isinstance(
                        record.data, pycares.ARecordData | pycares.AAAARecordData
                    )
                )
            if addresses:
                break
        if addresses:
            return addresses
    return None


def is_nameserver(text: str) -> bool:
    """Whether ``text`` is a DNS server c-ares accepts: ``ip``, ``ip:port``, ``[ipv6]:port``."""
    host, port = text.strip(), None
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = (
            rest.removeprefix(":") if rest.startswith(":") else ("" if rest else None)
        )
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return port is None or (port.isdigit() and 0 < int(port) < 65536)


async def _query_or_none(
    name: str, qtype: str, servers: Sequence[str] | None, query_timeout: float
) -> pycares.DNSResult | None:
    try:
        return await fresh_query(name, qtype, servers, query_timeout)
    except aiodns.error.DNSError:
        return None


async def lookup_addresses(
    name: str,
    nameservers: Sequence[str] | None = None,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
) -> tuple[str, ...] | None:
    """The A and AAAA addresses of ``name`` from its zone's own servers.

    ``nameservers`` replaces the authoritative servers. None when no server
    answered; an empty tuple when the name has no address.
    """

    async def query(
        qname: str, qtype: str, servers: Sequence[str] | None
    ) -> pycares.DNSResult | None:
        return await _query_or_none(qname, qtype, servers, query_timeout)

    servers = list(nameservers) if nameservers else None
    if servers is None:
        servers = await find_authoritative_servers(name, query)
        if servers is None:
            return None
    addresses: list[str] = []
    answered = False
    for qtype in ("A", "AAAA"):
        result = await query(name, qtype, servers)
        if result is None:
            continue
        answered = True
        addresses.extend(
            record.data.addr
            for record in result.answer
            if record.type in (pycares.QUERY_TYPE_A, pycares.QUERY_TYPE_AAAA)
            and isinstance(record.data, pycares.ARecordData | pycares.AAAARecordData)
            and clean_name(record.name) == name
        )
    return tuple(addresses) if answered else None
