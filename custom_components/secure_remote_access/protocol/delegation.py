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
import idna
import pycares

CHALLENGE_PREFIX: Final = "_acme-challenge."
DUCKDNS_SUFFIX: Final = ".duckdns.org"
MAX_CNAME_DEPTH: Final = 8
DEFAULT_QUERY_TIMEOUT: Final = 3.0
#: Let's Encrypt accepts at most 100 names in one certificate.
MAX_CERTIFICATE_NAMES: Final = 100

_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SEPARATORS: Final = re.compile(r"[,\s]+")
_NO_DATA: Final = frozenset({aiodns.error.ARES_ENOTFOUND, aiodns.error.ARES_ENODATA})


class InvalidNameError(ValueError):
    """A name that cannot go into a certificate (``name`` is as entered)."""

    def __init__(self, name: str) -> None:
        """Remember the offending name."""
        super().__init__(f"not a valid host name: {name}")
        self.name = name


class DuckDnsNameError(InvalidNameError):
    """A duckdns.org name among the extra names (those belong in the DuckDNS step)."""


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


def normalize_name(raw: str) -> str:
    """A host name (optionally ``*.``-prefixed) in lower-case ASCII (IDNA).

    Raises InvalidNameError for anything that is not RFC 1123 labels, and
    DuckDnsNameError for names under duckdns.org.
    """
    text = raw.strip().rstrip(".").lower()
    wildcard = text.startswith("*.")
    base = text.removeprefix("*.")
    try:
        ascii_name = idna.encode(base, uts46=True).decode("ascii") if base else ""
    except idna.IDNAError, UnicodeError:
        raise InvalidNameError(raw) from None
    labels = ascii_name.split(".")
    if (
        len(labels) < 2
        or len(ascii_name) > 253 - (2 if wildcard else 0)
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidNameError(raw)
    if ascii_name == DUCKDNS_SUFFIX[1:] or ascii_name.endswith(DUCKDNS_SUFFIX):
        raise DuckDnsNameError(raw)
    return f"*.{ascii_name}" if wildcard else ascii_name


def parse_extra_names(value: str | Iterable[str]) -> list[str]:
    """Names separated by commas, spaces or new lines: normalized, unique, in order."""
    parts = _SEPARATORS.split(value) if isinstance(value, str) else list(value)
    names: list[str] = []
    for part in parts:
        if part.strip() and (name := normalize_name(part)) not in names:
            names.append(name)
    return names


def challenge_record(name: str) -> str:
    """``_acme-challenge.`` + the name without its ``*.`` prefix."""
    return CHALLENGE_PREFIX + _clean(name).removeprefix("*.")


def _clean(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _duckdns_domain(name: str, domains: Sequence[str]) -> str | None:
    """The DuckDNS domain ``name`` is, or is under (``_acme-challenge.`` included)."""
    for domain in domains:
        if name == domain or name.endswith(f".{domain}"):
            return domain
    return None


async def _cname(
    name: str, nameservers: Sequence[str] | None, query_timeout: float
) -> str | None:
    """The CNAME target of ``name``, None when it has none.

    A fresh channel per query: c-ares caches answers per channel, and a record
    the user just fixed must be seen. Raises aiodns.error.DNSError when the
    server does not answer.
    """
    resolver = aiodns.DNSResolver(
        nameservers=list(nameservers) if nameservers else None,
        timeout=query_timeout,
        tries=2,
    )
    try:
        result = await resolver.query_dns(name, "CNAME")
    except aiodns.error.DNSError as err:
        if err.args and err.args[0] in _NO_DATA:
            return None
        raise
    finally:
        await resolver.close()
    return next(
        (
            _clean(record.data.cname)
            for record in result.answer
            if record.type == pycares.QUERY_TYPE_CNAME
            and isinstance(record.data, pycares.CNAMERecordData)
            and _clean(record.name) == name
        ),
        None,
    )


async def resolve_delegation(
    name: str,
    duckdns_domains: Sequence[str],
    nameservers: Sequence[str] | None = None,
    *,
    max_depth: int = MAX_CNAME_DEPTH,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
) -> str:
    """The DuckDNS domain ``_acme-challenge.<name>`` delegates to by CNAME.

    ``nameservers`` are ``"ip"`` or ``"ip:port"``; None uses the system
    resolver. Raises DelegationError naming the record to create.
    """
    domains = [_clean(domain) for domain in duckdns_domains]
    record = challenge_record(name)
    expected_target = CHALLENGE_PREFIX + domains[0]
    current = record
    seen = {record}
    for _ in range(max_depth):
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
        if (domain := _duckdns_domain(target, domains)) is not None:
            return domain
        if target in seen:
            break
        seen.add(target)
        current = target
    raise DelegationError(record, expected_target, current, DelegationProblem.LOOP)


async def resolve_delegations(
    names: Iterable[str],
    duckdns_domains: Sequence[str],
    nameservers: Sequence[str] | None = None,
    *,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
) -> dict[str, str]:
    """Base name (without ``*.``) -> DuckDNS domain for every delegated name.

    Raises the first DelegationError, or MultipleDelegationError (all of them) when
    several records are broken.
    """
    delegations: dict[str, str] = {}
    errors: list[DelegationError] = []
    for base in dict.fromkeys(_clean(name).removeprefix("*.") for name in names):
        try:
            delegations[base] = await resolve_delegation(
                base, duckdns_domains, nameservers, query_timeout=query_timeout
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
