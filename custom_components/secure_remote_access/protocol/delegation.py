"""Names outside duckdns.org, validated through DuckDNS by CNAME delegation.

A user who owns ``home.example.com`` creates one record at their DNS host::

    _acme-challenge.home.example.com. CNAME _acme-challenge.myhome.duckdns.org.

The CA then finds the dns-01 value of ``home.example.com`` (and of
``*.home.example.com``) in the one TXT value DuckDNS keeps for
``myhome.duckdns.org``. :func:`resolve_delegation` follows that CNAME chain
(aiodns, bounded depth) and returns the DuckDNS name it ends at, or raises
:class:`DelegationError` stating the record to create. No Home Assistant here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
import re
from typing import Final

import aiodns

from .dnsutil import (
    DEFAULT_QUERY_TIMEOUT,
    MAX_CNAME_DEPTH,
    CnameHop,
    cname_target,
    follow_cnames,
    fresh_query,
)
from .names import (
    CHALLENGE_PREFIX,
    WILDCARD_PREFIX,
    clean_name,
    duckdns_parent,
    normalize_dns_name,
)

#: Let's Encrypt accepts at most 100 names in one certificate.
MAX_CERTIFICATE_NAMES: Final = 100

_SEPARATORS: Final = re.compile(r"[,\s]+")


class DelegationProblem(StrEnum):
    """Why a delegation does not work."""

    MISSING = "missing"  # no CNAME at all (NXDOMAIN or no data)
    ELSEWHERE = "elsewhere"  # the chain ends outside the entry's DuckDNS names
    LOOP = "loop"  # the chain loops or is longer than the depth limit
    UNRESOLVED = "unresolved"  # the DNS server did not answer


class DelegationError(Exception):
    """``record`` does not delegate to one of the DuckDNS names.

    ``target`` is what it should point to, ``found`` where the chain ends
    (None when there is no CNAME or no answer).
    """

    def __init__(
        self,
        record: str,
        target: str,
        found: str | None,
        problem: DelegationProblem,
    ) -> None:
        """Describe the record to create."""
        self.record = record
        self.target = target
        self.found = found
        self.problem = problem
        super().__init__(self.message)

    @property
    def expected(self) -> str:
        """The exact record to create: ``<record> CNAME <target>``."""
        return f"{self.record} CNAME {self.target}"

    @property
    def message(self) -> str:
        """English detail for logs and the renewal error."""
        text = f"create {self.expected} at your DNS host"
        if self.problem is DelegationProblem.ELSEWHERE and self.found:
            return f"{self.record} points to {self.found}; {text}"
        if self.problem is DelegationProblem.LOOP:
            return f"the CNAME chain of {self.record} loops or is too long; {text}"
        if self.problem is DelegationProblem.UNRESOLVED:
            return f"{self.record} could not be resolved; {text}"
        return f"{self.record} has no CNAME; {text}"


def parse_extra_names(value: str | Iterable[str]) -> list[str]:
    """Names separated by commas, spaces or new lines: normalized, unique, in order."""
    parts = _SEPARATORS.split(value) if isinstance(value, str) else list(value)
    names: list[str] = []
    for part in parts:
        if part.strip() and (name := normalize_dns_name(part)) not in names:
            names.append(name)
    return names


async def _cname(
    name: str, nameservers: Sequence[str] | None, query_timeout: float
) -> str | None:
    """The CNAME target of ``name``, None when it has none.

    Raises aiodns.error.DNSError when the server does not answer.
    """
    result = await fresh_query(name, "CNAME", nameservers, query_timeout)
    return cname_target(result, name)


async def resolve_delegation(
    name: str,
    duckdns_domains: Sequence[str],
    nameservers: Sequence[str] | None = None,
    *,
    max_depth: int = MAX_CNAME_DEPTH,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    prefix: str = CHALLENGE_PREFIX,
) -> str:
    """The DuckDNS domain ``<prefix><name>`` delegates to by CNAME.

    ``prefix`` is ``_acme-challenge.`` (dns-01) or ``_validation-persist.``
    (dns-persist-01). ``nameservers`` are ``"ip"`` or ``"ip:port"``; None
    uses the system resolver. Raises DelegationError naming the record to create.
    """
    domains = [clean_name(domain) for domain in duckdns_domains]
    record = prefix + clean_name(name).removeprefix(WILDCARD_PREFIX)
    expected_target = prefix + domains[0]

    async def step(current: str) -> str | CnameHop:
        try:
            target = await _cname(current, nameservers, query_timeout)
        except aiodns.error.DNSError:
            raise DelegationError(
                record,
                expected_target,
                None if current == record else current,
                DelegationProblem.UNRESOLVED,
            ) from None
        if target is None:
            if current == record:
                raise DelegationError(
                    record, expected_target, None, DelegationProblem.MISSING
                )
            raise DelegationError(
                record, expected_target, current, DelegationProblem.ELSEWHERE
            )
        if (domain := duckdns_parent(target, domains)) is not None:
            return domain
        return CnameHop(target)

    def loop(current: str) -> str:
        raise DelegationError(record, expected_target, current, DelegationProblem.LOOP)

    return await follow_cnames(
        record, step, loop, stop_at_loop=True, max_depth=max_depth
    )


async def resolve_delegations(
    names: Iterable[str],
    duckdns_domains: Sequence[str],
    nameservers: Sequence[str] | None = None,
    *,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    prefix: str = CHALLENGE_PREFIX,
) -> dict[str, str]:
    """Base name (without ``*.``) -> DuckDNS domain for every delegated name.

    Raises the first DelegationError, or MultipleDelegationError (all of them) when
    several records are broken.
    """
    delegations: dict[str, str] = {}
    errors: list[DelegationError] = []
    for base in dict.fromkeys(
        clean_name(name).removeprefix(WILDCARD_PREFIX) for name in names
    ):
        try:
            delegations[base] = await resolve_delegation(
                base,
                duckdns_domains,
                nameservers,
                query_timeout=query_timeout,
                prefix=prefix,
            )
        except DelegationError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise MultipleDelegationError(errors)
    return delegations


class MultipleDelegationError(DelegationError):
    """Several broken delegations; behaves like the first, lists all."""

    def __init__(self, errors: Sequence[DelegationError]) -> None:
        """Keep every error; the first one gives record, target and problem."""
        first = errors[0]
        self.errors = list(errors)
        super().__init__(first.record, first.target, first.found, first.problem)

    @property
    def message(self) -> str:
        """Every error's detail."""
        return "; ".join(error.message for error in self.errors)


def expected_records(error: DelegationError) -> list[str]:
    """The exact ``<record> CNAME <target>`` lines to create."""
    errors = error.errors if isinstance(error, MultipleDelegationError) else [error]
    return [item.expected for item in errors]
