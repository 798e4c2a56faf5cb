"""Choosing the public IPv6 address."""

from __future__ import annotations

from pathlib import Path

from custom_components.secure_remote_access.protocol.ipv6 import (
    AddressFlags,
    choose_public_ipv6,
    is_public_ipv6,
    read_address_flags,
)

# Lines as /proc/net/if_inet6 prints them: address, index, prefix, scope, flags, name.
IF_INET6 = """\
20010db8000100000000000000000007 02 40 00 01 eth0
20010db8000100000000000000000008 02 40 00 20 eth0
20010db8000100000000000000000009 02 40 00 80 eth0
fe800000000000000000000000000001 02 40 20 80 eth0
broken line
zz010db8000100000000000000000009 02 40 00 80 eth0
"""


def test_is_public_ipv6() -> None:
    """Only global unicast addresses qualify."""
    assert is_public_ipv6("2001:4860::8888")
    assert is_public_ipv6("2a00:1450::1%eth0")
    for address in (
        "fe80::1",
        "fd12::1",
        "fc00::1",
        "::1",
        "ff02::1",
        "::ffff:1.2.3.4",
        "1.2.3.4",
        "junk",
    ):
        assert not is_public_ipv6(address), address


def test_read_address_flags(tmp_path: Path) -> None:
    """Temporary and deprecated flags are read; unreadable files give nothing."""
    path = tmp_path / "if_inet6"
    path.write_text(IF_INET6, encoding="ascii")
    flags = read_address_flags(path)
    assert flags["2001:db8:1::7"] == AddressFlags(temporary=True, unusable=False)
    assert flags["2001:db8:1::8"] == AddressFlags(temporary=False, unusable=True)
    assert flags["2001:db8:1::9"] == AddressFlags(temporary=False, unusable=False)
    assert read_address_flags(tmp_path / "missing") == {}


def test_choose_prefers_stable_addresses() -> None:
    """Deprecated addresses are skipped; temporary ones only used as a last resort."""
    flags = {
        "2001:4860::7": AddressFlags(temporary=True, unusable=False),
        "2001:4860::8": AddressFlags(temporary=False, unusable=True),
    }
    assert (
        choose_public_ipv6(
            ["fe80::1", "2001:4860::7", "2001:4860::8", "2001:4860::9"], flags
        )
        == "2001:4860::9"
    )
    assert choose_public_ipv6(["2001:4860::7", "2001:4860::8"], flags) == "2001:4860::7"
    assert choose_public_ipv6(["fe80::1", "fd00::1"], {}) is None
