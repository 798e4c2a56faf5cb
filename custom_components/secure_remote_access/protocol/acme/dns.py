"""DNS-01 plumbing: the solver protocol and a TXT propagation checker (aiodns).

A :class:`Dns01Solver` publishes and removes the TXT value of an identifier
(for DuckDNS: the single TXT value of the sub-domain). A
:class:`PropagationChecker` waits until the value is visible.
:class:`DnsPropagationChecker` asks either the name servers it is given
(``"127.0.0.1:8053"`` style, port optional) or, by default, the authoritative
servers of the zone, found with the system resolver. CNAMEs are followed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import logging
from typing import Final, Protocol

import aiodns
import pycares

from custom_components.secure_remote_access.protocol.dnsutil import (
    DEFAULT_QUERY_TIMEOUT,
    CnameHop,
    cname_target,
    find_authoritative_servers,
    follow_cnames,
    fresh_query,
)
from custom_components.secure_remote_access.protocol.names import (
    challenge_record_name,
    clean_name,
)

from .errors import DnsPropagationTimeoutError

_LOGGER = logging.getLogger(__name__)

DEFAULT_PROPAGATION_TIMEOUT: Final = 120.0
DEFAULT_POLL_INTERVAL: Final = 2.0
ZONE_CACHE_SECONDS: Final = 600.0


class Dns01Solver(Protocol):
    """Publishes dns-01 TXT values.

    ``identifier`` is the DNS name being validated, without a ``*.`` prefix;
    the record is :func:`challenge_record_name` of it.
    """

    async def set_txt(self, identifier: str, value: str) -> None:
        """Publish ``value`` as the TXT record for ``identifier``."""

    async def clear_txt(self, identifier: str) -> None:
        """Remove the TXT record for ``identifier``."""


class PropagationChecker(Protocol):
    """Waits until a published TXT value is visible."""

    async def wait_for_txt(self, identifier: str, value: str, deadline: float) -> None:
        """Return once visible; raise DnsPropagationTimeoutError at ``deadline`` (loop time)."""


def _texts(result: pycares.DNSResult) -> tuple[str, ...]:
    return tuple(
        record.data.data.decode("utf-8", "replace")
        for record in result.answer
        if record.type == pycares.QUERY_TYPE_TXT
        and isinstance(record.data, pycares.TXTRecordData)
    )


class DnsPropagationChecker:
    """Poll TXT records with aiodns until they carry the expected value.

    Every server asked (each given one, or each authoritative server of the
    zone) that answers must show the value; servers that do not answer at all
    are ignored as long as one does.
    """

    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        interval: float = DEFAULT_POLL_INTERVAL,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> None:
        """Use ``nameservers`` (``ip`` or ``ip:port``) or, when None, the zone's own servers."""
        self._nameservers = list(nameservers) if nameservers else None
        self._interval = interval
        self._query_timeout = query_timeout
        self._zone_cache: dict[str, tuple[float, list[str] | None]] = {}

    async def wait_for_txt(self, identifier: str, value: str, deadline: float) -> None:
        """Poll ``_acme-challenge.<identifier>`` until it contains ``value``."""
        await self.wait_for_record(challenge_record_name(identifier), value, deadline)

    async def wait_for_record(self, record: str, value: str, deadline: float) -> None:
        """Poll the TXT record ``record`` until every answering server shows ``value``."""
        loop = asyncio.get_running_loop()
        seen: tuple[str, ...] = ()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DnsPropagationTimeoutError(record, value, seen)
            try:
                async with asyncio.timeout(remaining):
                    answers = await self._answers(record)
            except TimeoutError:
                raise DnsPropagationTimeoutError(record, value, seen) from None
            seen = tuple(sorted({text for texts in answers for text in texts}))
            if answers and all(value in texts for texts in answers):
                _LOGGER.debug("TXT %s shows the expected value", record)
                return
            _LOGGER.debug("TXT %s not there yet (seen %s)", record, seen)
            await asyncio.sleep(max(0.0, min(self._interval, deadline - loop.time())))

    async def lookup_txt(self, name: str) -> tuple[str, ...]:
        """All TXT strings any asked server returns for ``name`` (CNAMEs followed)."""
        return await self.query_txt(name) or ()

    async def query_txt(self, name: str) -> tuple[str, ...] | None:
        """Like :meth:`lookup_txt`, but None when no server answered at all."""
        answers = await self._answers(name)
        if not answers:
            return None
        return tuple(sorted({text for texts in answers for text in texts}))

    async def _answers(self, name: str) -> list[tuple[str, ...]]:
        """The TXT strings of ``name`` per answering server, following CNAMEs."""

        async def step(current: str) -> list[tuple[str, ...]] | CnameHop:
            servers = self._nameservers or await self._authoritative_servers(current)
            groups: list[list[str] | None] = (
                [[server] for server in servers] if servers else [None]
            )
            results = await asyncio.gather(
                *(self._query(current, "TXT", group) for group in groups)
            )
            answered = [result for result in results if result is not None]
            per_server = [_texts(result) for result in answered]
            if any(per_server):
                return per_server
            target = next(
                (t for result in answered if (t := cname_target(result, current))),
                None,
            )
            return per_server if target is None else CnameHop(target)

        return await follow_cnames(clean_name(name), step, lambda _: [])

    async def _query(
        self, name: str, qtype: str, servers: Sequence[str] | None
    ) -> pycares.DNSResult | None:
        """One query with a fresh channel (c-ares caches answers per channel).

        NXDOMAIN and NODATA give an empty result; no answer at all gives None.
        """
        try:
            return await fresh_query(name, qtype, servers, self._query_timeout)
        except aiodns.error.DNSError as err:
            _LOGGER.debug("%s query for %s failed: %s", qtype, name, err)
            return None

    async def _authoritative_servers(self, name: str) -> list[str] | None:
        """Addresses of the name servers of the zone holding ``name`` (None: system resolver)."""
        now = asyncio.get_running_loop().time()
        cached = self._zone_cache.get(name)
        if cached is not None and now - cached[0] < ZONE_CACHE_SECONDS:
            return cached[1]
        servers = await find_authoritative_servers(name, self._query)
        self._zone_cache[name] = (now, servers)
        return servers
