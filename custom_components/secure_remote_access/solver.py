"""Answering DNS challenges through DuckDNS's one TXT value per name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from .const import LOGGER
from .protocol.delegation import DelegationError
from .protocol.duckdns import DuckDnsClient, DuckDnsError
from .protocol.names import WILDCARD_PREFIX, clean_name, duckdns_parent


def duckdns_domain_for(
    identifier: str,
    domains: list[str],
    delegations: Mapping[str, str] | None = None,
) -> str:
    """The DuckDNS name whose TXT record answers a challenge for ``identifier``.

    ``delegations`` maps names outside duckdns.org (without ``*.``) to the
    DuckDNS name their challenge record's CNAME points to.
    """
    name = clean_name(identifier).removeprefix(WILDCARD_PREFIX)
    if (domain := duckdns_parent(name, domains)) is not None:
        return domain
    if delegations and name in delegations:
        return delegations[name]
    raise ValueError(f"{identifier} is not under {', '.join(domains)}")


class DuckDnsSolver:
    """Answers dns-01 and dns-persist-01 through the one TXT value of each DuckDNS name.

    Delegated names are answered through the TXT value of the DuckDNS name
    their CNAME points to: ``delegations`` for ``_acme-challenge`` records,
    ``persist_delegations`` for ``_validation-persist`` ones (both set before
    every order). ``on_persist_written`` hears of every persistent record
    about to be set.
    """

    def __init__(
        self,
        client: DuckDnsClient,
        domains: list[str],
        on_persist_written: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        """Solve for names under ``domains``."""
        self._client = client
        self._domains = domains
        self._on_persist_written = on_persist_written
        self.delegations: dict[str, str] = {}
        self.persist_delegations: dict[str, str] = {}
        #: Why dns-01 cannot answer for a delegated name (only its
        #: ``_validation-persist`` record delegates); raised if dns-01 is needed.
        self.dns01_problem: DelegationError | None = None
        self._clear_failing = False

    async def set_txt(self, identifier: str, value: str) -> None:
        """Publish a dns-01 value."""
        if self.dns01_problem is not None:
            raise self.dns01_problem
        await self._client.set_txt(
            duckdns_domain_for(identifier, self._domains, self.delegations), value
        )

    async def clear_txt(self, identifier: str) -> None:
        """Remove a dns-01 value; DuckDNS failing is logged, not raised.

        The value left behind is overwritten by the next order. One warning
        per outage (the first failed clear), the traceback at debug level.
        """
        domain = self.dns01_zone_of(identifier)
        try:
            await self._client.clear_txt(domain)
        except DuckDnsError as err:
            log = LOGGER.debug if self._clear_failing else LOGGER.warning
            log(
                "Could not clear the TXT record of %s (%s); the next order "
                "overwrites it",
                domain,
                err,
            )
            LOGGER.debug("Clearing the TXT record of %s", domain, exc_info=True)
            self._clear_failing = True
            return
        self._clear_failing = False

    def dns01_zone_of(self, identifier: str) -> str:
        """The DuckDNS name whose TXT value answers ``identifier``'s dns-01 challenge."""
        return duckdns_domain_for(identifier, self._domains, self.delegations)

    def zone_of(self, identifier: str) -> str:
        """The DuckDNS name whose TXT value is ``identifier``'s persistent record."""
        return duckdns_domain_for(identifier, self._domains, self.persist_delegations)

    async def set_persist_txt(self, identifier: str, value: str) -> None:
        """Publish the persistent record (it stays until cleared).

        Remembered before it is written: a restart in between must not leave
        a record nobody would clear.
        """
        domain = self.zone_of(identifier)
        if self._on_persist_written is not None:
            await self._on_persist_written(domain, value)
        await self._client.set_txt(domain, value)
