"""Host names: normalizing, validating, DuckDNS and challenge names, SAN matching.

No Home Assistant imports. Callers accept different sets of names, and each
set has its own function here:

* `normalize_dns_name`: a certificate name outside duckdns.org (RFC 1123
  labels, IDNA UTS 46, one leading ``*.``); raises `InvalidNameError`.
* `normalize_duckdns_domain`: ``myhome`` or ``myhome.duckdns.org``; raises
  `InvalidDomainError`.
* `normalize_endpoint_host`: an IP address or a host name whose labels may
  hold ``_`` (IDNA 2003); None when invalid.
* `normalize_san_name`: a name as found in a certificate (any ASCII, ``*``
  kept); None when invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import ipaddress
import re
from typing import Final

import idna

DUCKDNS_PARENT: Final = "duckdns.org"
DUCKDNS_SUFFIX: Final = f".{DUCKDNS_PARENT}"
CHALLENGE_PREFIX: Final = "_acme-challenge."
PERSIST_PREFIX: Final = "_validation-persist."
WILDCARD_PREFIX: Final = "*."
MAX_NAME_LENGTH: Final = 253
MAX_LABEL_LENGTH: Final = 63

#: An RFC 1123 label in lower case: letters, digits, inner hyphens.
DNS_LABEL: Final = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.ASCII)
#: A label of an endpoint host, where ``_`` is tolerated as well.
HOST_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", re.ASCII)
_RESOLVABLE_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*", re.ASCII)


class InvalidNameError(ValueError):
    """A name that cannot go into a certificate (``name`` is as entered)."""

    def __init__(self, name: str) -> None:
        """Remember the offending name."""
        super().__init__(f"not a valid host name: {name}")
        self.name = name


class DuckDnsNameError(InvalidNameError):
    """A duckdns.org name among the extra names (those belong in the DuckDNS step)."""


class InvalidDomainError(ValueError):
    """A name that is not a DuckDNS sub-domain; ``reason`` says why.

    Reasons: ``empty`` (nothing entered), ``space`` (a space inside a name),
    ``not_duckdns`` (a name under another domain), ``invalid`` (characters or
    length), ``too_many`` (``name`` is then the number of names).
    """

    def __init__(self, name: str, reason: str = "invalid") -> None:
        """Remember the name and why it is refused."""
        super().__init__(f"{name!r}: {reason}")
        self.name = name
        self.reason = reason


def clean_name(name: str) -> str:
    """White space and trailing dots removed, lower case; no validation."""
    return name.strip().rstrip(".").lower()


def normalize_names(names: Sequence[str]) -> tuple[str, ...]:
    """Names for an order: cleaned (`clean_name`), unique, in order; ValueError if none or empty."""
    result: list[str] = []
    for name in names:
        clean = clean_name(name)
        if not clean:
            raise ValueError("empty name")
        if clean not in result:
            result.append(clean)
    if not result:
        raise ValueError("at least one name is required")
    return tuple(result)


def idna_ascii(name: str, *, uts46: bool = True) -> str | None:
    """The ASCII form of ``name``: IDNA 2008 with UTS 46 mapping, or IDNA 2003.

    None when the name cannot be encoded.
    """
    try:
        if uts46:
            return idna.encode(name, uts46=True).decode("ascii")
        return name.encode("idna").decode("ascii")
    except idna.IDNAError, UnicodeError:
        return None


def is_duckdns_name(name: str) -> bool:
    """Whether a normalized name is duckdns.org or under it."""
    return name == DUCKDNS_PARENT or name.endswith(DUCKDNS_SUFFIX)


def ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``value`` spells (brackets allowed), or None."""
    try:
        return ipaddress.ip_address(value.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _labels_valid(name: str, label: re.Pattern[str]) -> bool:
    """Every label matches and the last is not all digits (no ``10.1``)."""
    labels = name.split(".")
    return all(label.fullmatch(part) for part in labels) and not labels[-1].isdigit()


def normalize_dns_name(raw: str) -> str:
    """A host name (optionally ``*.``-prefixed) in lower-case ASCII (IDNA).

    Raises InvalidNameError for anything that is not two or more RFC 1123
    labels, and DuckDnsNameError for duckdns.org names (those are DuckDNS's own).
    """
    text = clean_name(raw)
    wildcard = text.startswith(WILDCARD_PREFIX)
    base = text.removeprefix(WILDCARD_PREFIX)
    ascii_name = idna_ascii(base) if base else ""
    if ascii_name is None:
        raise InvalidNameError(raw)
    if (
        "." not in ascii_name
        or len(ascii_name) > MAX_NAME_LENGTH - (2 if wildcard else 0)
        or not _labels_valid(ascii_name, DNS_LABEL)
    ):
        raise InvalidNameError(raw)
    if is_duckdns_name(ascii_name):
        raise DuckDnsNameError(raw)
    return f"{WILDCARD_PREFIX}{ascii_name}" if wildcard else ascii_name


def normalize_duckdns_domain(name: str) -> str:
    """Return the full lower-case DuckDNS name for ``myhome`` or ``myhome.duckdns.org``."""
    shown = name.strip()
    candidate = shown.lower().rstrip(".").removesuffix(DUCKDNS_SUFFIX)
    if not candidate:
        raise InvalidDomainError(shown, "empty")
    if any(character.isspace() for character in candidate):
        raise InvalidDomainError(shown, "space")
    if "." in candidate:
        raise InvalidDomainError(shown, "not_duckdns")
    if not DNS_LABEL.fullmatch(candidate):
        raise InvalidDomainError(shown, "invalid")
    return f"{candidate}{DUCKDNS_SUFFIX}"


def duckdns_label(domain: str) -> str:
    """The label DuckDNS expects in ``domains=`` (``myhome`` for ``myhome.duckdns.org``)."""
    return normalize_duckdns_domain(domain).removesuffix(DUCKDNS_SUFFIX)


def duckdns_parent(name: str, domains: Sequence[str]) -> str | None:
    """The DuckDNS domain of ``domains`` that ``name`` is, or is under."""
    for domain in domains:
        if name == domain or name.endswith(f".{domain}"):
            return domain
    return None


def challenge_record_name(identifier: str) -> str:
    """The TXT record name of an identifier: ``_acme-challenge.`` + name without ``*.``."""
    return CHALLENGE_PREFIX + clean_name(identifier).removeprefix(WILDCARD_PREFIX)


def persist_record_name(identifier: str) -> str:
    """The dns-persist-01 record of ``identifier`` (a wildcard's is its base name's)."""
    return PERSIST_PREFIX + clean_name(identifier).removeprefix(WILDCARD_PREFIX)


def _idna2003_lower(name: str) -> str | None:
    """A non-empty name of at most 253 characters in lower-case ASCII, or None."""
    if not name or len(name) > MAX_NAME_LENGTH:
        return None
    ascii_name = idna_ascii(name, uts46=False)
    return None if ascii_name is None else ascii_name.lower()


def normalize_endpoint_host(host: str) -> str | None:
    """An IP address or a lower-case ASCII (IDNA) host name; None when invalid."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    ascii_name = _idna2003_lower(host.removesuffix("."))
    if ascii_name is None:
        return None
    return ascii_name if _labels_valid(ascii_name, HOST_LABEL) else None


def normalize_san_name(name: str) -> str | None:
    """A certificate name in lower-case ASCII (IDNA) without trailing dot, or None."""
    ascii_name = _idna2003_lower(name.strip().rstrip("."))
    if ascii_name is None:
        return None
    if any(
        not label or len(label) > MAX_LABEL_LENGTH for label in ascii_name.split(".")
    ):
        return None
    return ascii_name


def is_resolvable_name(name: str) -> bool:
    """Whether a `normalize_san_name` result may be looked up (no ``*``, no spaces)."""
    return _RESOLVABLE_NAME.fullmatch(name) is not None


def hostname_matches(pattern: str, host: str) -> bool:
    """Match a DNS-name SAN against a host name (RFC 6125, section 6.4).

    ``*`` only as the complete left-most label, standing for exactly one
    non-empty label; at least two labels after it (no ``*.com``); no match
    on the bare parent; case-insensitive; IDNA; IP addresses never match.
    """
    if ip_address(host) is not None:
        return False
    normalized_host = normalize_san_name(host)
    normalized_pattern = normalize_san_name(pattern)
    if normalized_host is None or normalized_pattern is None or "*" in normalized_host:
        return False
    pattern_labels = normalized_pattern.split(".")
    host_labels = normalized_host.split(".")
    if pattern_labels[0] != "*":
        return "*" not in normalized_pattern and normalized_pattern == normalized_host
    if "*" in ".".join(pattern_labels[1:]) or len(pattern_labels) < 3:
        return False
    return (
        len(host_labels) == len(pattern_labels)
        and host_labels[1:] == pattern_labels[1:]
    )


def names_cover_host(
    dns_names: Iterable[str], ip_addresses: Iterable[str], host: str
) -> bool:
    """Return True when the SANs cover ``host``; IPs match only IP SANs."""
    if (address := ip_address(host)) is not None:
        return any(ip_address(value) == address for value in ip_addresses)
    return any(hostname_matches(pattern, host) for pattern in dns_names)
