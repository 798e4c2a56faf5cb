"""CNAME delegation checks against pebble-challtestsrv's DNS server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from custom_components.secure_remote_access.protocol.acme import DnsPropagationChecker
from custom_components.secure_remote_access.protocol.delegation import (
    DelegationError,
    DelegationProblem,
    MultipleDelegationError,
    expected_records,
    parse_extra_names,
    resolve_delegation,
    resolve_delegations,
)
from custom_components.secure_remote_access.protocol.names import (
    DuckDnsNameError,
    InvalidNameError,
    challenge_record_name,
    normalize_dns_name,
)
from custom_components.secure_remote_access.solver import duckdns_domain_for
from tests.fakes.pebble import PebbleServer

DUCK = ["myhome.duckdns.org", "cabin.duckdns.org"]
ZONE = "dlg-unit.example.net"
CnameSetter = Callable[[str, str], Coroutine[Any, Any, None]]


@pytest.fixture
async def cname(
    socket_enabled: None, pebble: PebbleServer
) -> AsyncIterator[CnameSetter]:
    """Set CNAMEs on the shared challtestsrv; all removed after the test."""
    hosts: list[str] = []

    async def set_cname(host: str, target: str) -> None:
        hosts.append(host)
        await pebble.set_cname(host, target)

    yield set_cname
    for host in hosts:
        await pebble.clear_cname(host)


@pytest.mark.parametrize(
    ("target", "domain"),
    [
        ("_acme-challenge.myhome.duckdns.org", "myhome.duckdns.org"),
        ("myhome.duckdns.org", "myhome.duckdns.org"),
        ("anything.cabin.duckdns.org", "cabin.duckdns.org"),
        ("_ACME-Challenge.Cabin.DuckDNS.org.", "cabin.duckdns.org"),
    ],
)
async def test_direct_delegation(
    pebble: PebbleServer, cname: CnameSetter, target: str, domain: str
) -> None:
    """Any name at or under one of the DuckDNS names is accepted."""
    await cname(f"_acme-challenge.direct.{ZONE}", target)
    assert (
        await resolve_delegation(f"*.direct.{ZONE}", DUCK, [pebble.dns_server])
        == domain
    )


async def test_chain_is_followed(pebble: PebbleServer, cname: CnameSetter) -> None:
    """A chain through names of the user's zone ends at DuckDNS."""
    await cname(f"_acme-challenge.chain.{ZONE}", f"hop1.{ZONE}")
    await cname(f"hop1.{ZONE}", f"hop2.{ZONE}")
    await cname(f"hop2.{ZONE}", "_acme-challenge.cabin.duckdns.org")
    assert (
        await resolve_delegation(f"chain.{ZONE}", DUCK, [pebble.dns_server])
        == "cabin.duckdns.org"
    )


async def test_missing_cname(pebble: PebbleServer, socket_enabled: None) -> None:
    """No CNAME at all: the error states the record to create."""
    with pytest.raises(DelegationError) as err:
        await resolve_delegation(f"missing.{ZONE}", DUCK, [pebble.dns_server])
    assert err.value.problem is DelegationProblem.MISSING
    assert err.value.record == f"_acme-challenge.missing.{ZONE}"
    assert err.value.target == "_acme-challenge.myhome.duckdns.org"
    assert err.value.found is None
    assert err.value.expected == (
        f"_acme-challenge.missing.{ZONE} CNAME _acme-challenge.myhome.duckdns.org"
    )
    assert "has no CNAME" in str(err.value)


@pytest.mark.parametrize(
    "target",
    ["_acme-challenge.someone-else.duckdns.org", f"elsewhere-end.{ZONE}"],
)
async def test_pointing_elsewhere(
    pebble: PebbleServer, cname: CnameSetter, target: str
) -> None:
    """A chain that ends outside the entry's DuckDNS names is broken."""
    await cname(f"_acme-challenge.elsewhere.{ZONE}", target)
    with pytest.raises(DelegationError) as err:
        await resolve_delegation(f"elsewhere.{ZONE}", DUCK, [pebble.dns_server])
    assert err.value.problem is DelegationProblem.ELSEWHERE
    assert err.value.found == target
    assert f"points to {target}" in err.value.message


async def test_loop(pebble: PebbleServer, cname: CnameSetter) -> None:
    """A loop stops at once."""
    await cname(f"_acme-challenge.loop.{ZONE}", f"loop-a.{ZONE}")
    await cname(f"loop-a.{ZONE}", f"loop-b.{ZONE}")
    await cname(f"loop-b.{ZONE}", f"loop-a.{ZONE}")
    with pytest.raises(DelegationError) as err:
        await resolve_delegation(f"loop.{ZONE}", DUCK, [pebble.dns_server])
    assert err.value.problem is DelegationProblem.LOOP
    assert "loops or is too long" in err.value.message


async def test_too_deep(pebble: PebbleServer, cname: CnameSetter) -> None:
    """A chain longer than the limit is refused even if it would end at DuckDNS."""
    await cname(f"_acme-challenge.deep.{ZONE}", f"deep-1.{ZONE}")
    await cname(f"deep-1.{ZONE}", f"deep-2.{ZONE}")
    await cname(f"deep-2.{ZONE}", "myhome.duckdns.org")
    with pytest.raises(DelegationError) as err:
        await resolve_delegation(f"deep.{ZONE}", DUCK, [pebble.dns_server], max_depth=2)
    assert err.value.problem is DelegationProblem.LOOP
    assert err.value.found == f"deep-2.{ZONE}"
    assert (
        await resolve_delegation(f"deep.{ZONE}", DUCK, [pebble.dns_server], max_depth=3)
        == "myhome.duckdns.org"
    )


async def test_unresolved(socket_enabled: None) -> None:
    """A server that does not answer: the record is still named."""
    with pytest.raises(DelegationError) as err:
        await resolve_delegation(
            f"silent.{ZONE}", DUCK, ["127.0.0.1:9"], query_timeout=0.2
        )
    assert err.value.problem is DelegationProblem.UNRESOLVED
    assert "could not be resolved" in err.value.message


async def test_resolve_many(pebble: PebbleServer, cname: CnameSetter) -> None:
    """One lookup per base name; every broken record is listed."""
    await cname(f"_acme-challenge.many.{ZONE}", "_acme-challenge.myhome.duckdns.org")
    assert await resolve_delegations(
        [f"many.{ZONE}", f"*.many.{ZONE}"], DUCK, [pebble.dns_server]
    ) == {f"many.{ZONE}": "myhome.duckdns.org"}
    assert await resolve_delegations([], DUCK, [pebble.dns_server]) == {}

    with pytest.raises(DelegationError) as one:
        await resolve_delegations(
            [f"many.{ZONE}", f"nope1.{ZONE}"], DUCK, [pebble.dns_server]
        )
    assert not isinstance(one.value, MultipleDelegationError)
    assert expected_records(one.value) == [
        f"_acme-challenge.nope1.{ZONE} CNAME _acme-challenge.myhome.duckdns.org"
    ]
    with pytest.raises(MultipleDelegationError) as many:
        await resolve_delegations(
            [f"nope1.{ZONE}", f"*.nope2.{ZONE}"], DUCK, [pebble.dns_server]
        )
    assert many.value.record == f"_acme-challenge.nope1.{ZONE}"
    assert expected_records(many.value) == [
        f"_acme-challenge.nope1.{ZONE} CNAME _acme-challenge.myhome.duckdns.org",
        f"_acme-challenge.nope2.{ZONE} CNAME _acme-challenge.myhome.duckdns.org",
    ]
    assert str(many.value).count("has no CNAME") == 2


async def test_propagation_checker_follows_the_delegation(
    pebble: PebbleServer, cname: CnameSetter
) -> None:
    """wait_for_txt on the delegated name sees the DuckDNS TXT value."""
    await cname(f"_acme-challenge.prop.{ZONE}", "_acme-challenge.dlg-prop.duckdns.org")
    await pebble.set_txt("_acme-challenge.dlg-prop.duckdns.org", "delegated-value")
    try:
        checker = DnsPropagationChecker([pebble.dns_server], interval=0.05)
        loop = asyncio.get_running_loop()
        await checker.wait_for_txt(f"*.prop.{ZONE}", "delegated-value", loop.time() + 5)
        assert await checker.lookup_txt(f"_acme-challenge.prop.{ZONE}") == (
            "delegated-value",
        )
    finally:
        await pebble.clear_txt("_acme-challenge.dlg-prop.duckdns.org")


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Home.Example.COM.", "home.example.com"),
        (" *.home.example.com ", "*.home.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("*.münchen.de", "*.xn--mnchen-3ya.de"),
        ("a-b.c1.example", "a-b.c1.example"),
    ],
)
def test_normalize_name(raw: str, name: str) -> None:
    """Lower case, IDNA, trailing dot removed, wildcard kept."""
    assert normalize_dns_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "*.",
        "localhost",
        "bad_name.example.com",
        "-lead.example.com",
        "trail-.example.com",
        "a..example.com",
        "*.*.example.com",
        "home.*.example.com",
        "192.168.1.10",
        f"{'a' * 64}.example.com",
        ".".join(["abcdefghi"] * 26) + ".com",
        "http://home.example.com",
    ],
)
def test_invalid_names(raw: str) -> None:
    """Anything but RFC 1123 labels (and one leading *.) is refused."""
    with pytest.raises(InvalidNameError) as err:
        normalize_dns_name(raw)
    assert not isinstance(err.value, DuckDnsNameError)
    assert err.value.name == raw


@pytest.mark.parametrize(
    "raw", ["myhome.duckdns.org", "*.myhome.duckdns.org", "DuckDNS.org"]
)
def test_duckdns_names_are_refused(raw: str) -> None:
    """DuckDNS names belong in the DuckDNS step."""
    with pytest.raises(DuckDnsNameError):
        normalize_dns_name(raw)


def test_parse_extra_names() -> None:
    """Commas, spaces and new lines separate; duplicates go; order stays."""
    assert parse_extra_names("b.example.com,\n*.b.example.com  B.example.com,,") == [
        "b.example.com",
        "*.b.example.com",
    ]
    assert parse_extra_names(["x.example.com", " ", "X.example.com"]) == [
        "x.example.com"
    ]
    assert parse_extra_names("") == []


def test_challenge_record_and_solver_mapping() -> None:
    """Delegated names are answered through the DuckDNS name they point to."""
    assert (
        challenge_record_name("*.Home.Example.com.")
        == "_acme-challenge.home.example.com"
    )
    delegations = {"home.example.com": "myhome.duckdns.org"}
    assert (
        duckdns_domain_for("*.home.example.com", DUCK, delegations)
        == "myhome.duckdns.org"
    )
    assert duckdns_domain_for("x.cabin.duckdns.org", DUCK, delegations) == (
        "cabin.duckdns.org"
    )
    with pytest.raises(ValueError, match=r"other\.example\.com"):
        duckdns_domain_for("other.example.com", DUCK, delegations)
