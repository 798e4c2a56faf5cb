"""Choose the host's public IPv6 address for DuckDNS (no Home Assistant imports)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import ipaddress
from pathlib import Path
import socket

IF_INET6 = Path("/proc/net/if_inet6")
# Flags of /proc/net/if_inet6 (linux/if_addr.h).
IFA_F_TEMPORARY = 0x01
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
_UNUSABLE = IFA_F_DEPRECATED | IFA_F_TENTATIVE
_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


@dataclass(frozen=True, slots=True)
class AddressFlags:
    """What the kernel says about one configured IPv6 address."""

    temporary: bool
    unusable: bool


def is_public_ipv6(address: str) -> bool:
    """True for a global unicast IPv6 address DuckDNS can point at."""
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return False
    return (
        ip not in _LINK_LOCAL
        and ip not in _UNIQUE_LOCAL
        and ip.is_global
        and not ip.is_multicast
        and ip.ipv4_mapped is None
    )


def is_unique_local_ipv6(address: str) -> bool:
    """True for a unique local IPv6 address (fc00::/7, a home's own prefix)."""
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip in _UNIQUE_LOCAL


def read_address_flags(path: Path = IF_INET6) -> dict[str, AddressFlags]:
    """Read address flags from /proc/net/if_inet6 (blocking; empty when unavailable)."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError:
        return {}
    flags: dict[str, AddressFlags] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            address = str(ipaddress.IPv6Address(int(fields[0], 16)))
            value = int(fields[4], 16)
        except ValueError:
            continue
        flags[address] = AddressFlags(
            temporary=bool(value & IFA_F_TEMPORARY),
            unusable=bool(value & _UNUSABLE),
        )
    return flags


def choose_public_ipv6(
    candidates: Iterable[str], flags: dict[str, AddressFlags]
) -> str | None:
    """Pick a stable public address: skip deprecated ones, prefer non-temporary ones."""
    usable: list[tuple[bool, str]] = []
    for candidate in candidates:
        if not is_public_ipv6(candidate):
            continue
        address = str(ipaddress.IPv6Address(candidate.split("%", 1)[0]))
        state = flags.get(address)
        if state is not None and state.unusable:
            continue
        usable.append((state is not None and state.temporary, address))
    if not usable:
        return None
    return min(usable)[1]


def is_own_address(address: str) -> bool:
    """Whether this host holds ``address`` now (a socket binds to it; nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError, ValueError:
        return False
    return True
