"""Tests for protocol/names.py: every rule of the normalizers, DuckDNS and SAN matching."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from custom_components.secure_remote_access.protocol import names

LONG_LABEL = "a" * 64


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Home.Example.COM", "home.example.com"),  # upper case
        ("home.example.com.", "home.example.com"),  # trailing dot
        ("  home.example.com  ", "home.example.com"),  # white space
        ("*.Home.Example.com", "*.home.example.com"),  # wildcard kept
        ("bücher.example", "xn--bcher-kva.example"),  # IDNA
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2008 (UTS 46), not 2003's fass.de
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_dns_name_rules(raw: str, expected: str) -> None:
    """Certificate names: lower case, IDNA 2008, no trailing dot, ``*.`` kept."""
    assert names.normalize_dns_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "under_score.example.com",  # no _ in certificate names
        "-lead.example.com",
        "trail-.example.com",
        "a..example.com",
        "single",  # one label
        "*.*.example.com",
        "x.*.example.com",
        "10.0.0.1",  # an address, not a name
        f"{LONG_LABEL}.example.com",  # label too long
        ".".join(["a" * 62] * 4) + ".com",  # name too long
        "bad name.example.com",
    ],
)
def test_dns_name_refusals(raw: str) -> None:
    """Anything but RFC 1123 labels raises InvalidNameError naming the input."""
    with pytest.raises(names.InvalidNameError) as err:
        names.normalize_dns_name(raw)
    assert err.value.name == raw
    assert not isinstance(err.value, names.DuckDnsNameError)


def test_dns_name_length_limit_is_exact() -> None:
    """253 characters pass, 254 do not; a wildcard counts its two characters."""
    name = ".".join(["a" * 63] * 3) + "." + "b" * 61
    assert len(name) == 253
    assert names.normalize_dns_name(name) == name
    with pytest.raises(names.InvalidNameError):
        names.normalize_dns_name("c" + name)
    with pytest.raises(names.InvalidNameError):
        names.normalize_dns_name("*." + name)


@pytest.mark.parametrize("raw", ["duckdns.org", "x.DuckDNS.org.", "*.x.duckdns.org"])
def test_duckdns_names_are_not_extra_names(raw: str) -> None:
    """duckdns.org names belong to the DuckDNS step."""
    with pytest.raises(names.DuckDnsNameError):
        names.normalize_dns_name(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("myhome", "myhome.duckdns.org"),
        (" MyHome.DuckDNS.org. ", "myhome.duckdns.org"),
        ("my-home2", "my-home2.duckdns.org"),
    ],
)
def test_duckdns_domain(raw: str, expected: str) -> None:
    """The sub-domain alone or in full gives the full DuckDNS name and its label."""
    assert names.normalize_duckdns_domain(raw) == expected
    assert names.duckdns_label(raw) == expected.removesuffix(names.DUCKDNS_SUFFIX)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        (".duckdns.org", "empty"),
        ("my home", "space"),
        ("a.myhome", "not_duckdns"),
        ("home.example.com", "not_duckdns"),
        ("my_home", "invalid"),
        ("-home", "invalid"),
        ("bücher", "invalid"),  # no IDNA for DuckDNS
        (LONG_LABEL, "invalid"),
    ],
)
def test_duckdns_domain_refusals(raw: str, reason: str) -> None:
    """Each refusal says why."""
    with pytest.raises(names.InvalidDomainError) as err:
        names.normalize_duckdns_domain(raw)
    assert err.value.reason == reason


def test_duckdns_parent() -> None:
    """A name is, or is under, one of the DuckDNS domains; never a mere suffix."""
    domains = ["myhome.duckdns.org", "cabin.duckdns.org"]
    assert names.duckdns_parent("myhome.duckdns.org", domains) == "myhome.duckdns.org"
    assert (
        names.duckdns_parent("_acme-challenge.cabin.duckdns.org", domains)
        == "cabin.duckdns.org"
    )
    assert names.duckdns_parent("notmyhome.duckdns.org", domains) is None
    assert names.duckdns_parent("other.example.com", domains) is None


@pytest.mark.parametrize(
    ("identifier", "record"),
    [
        ("home.example.com", "_acme-challenge.home.example.com"),
        ("*.Home.Example.com.", "_acme-challenge.home.example.com"),
        (" myhome.duckdns.org ", "_acme-challenge.myhome.duckdns.org"),
    ],
)
def test_challenge_record_name(identifier: str, record: str) -> None:
    """``_acme-challenge.`` + the clean name without its wildcard."""
    assert names.challenge_record_name(identifier) == record


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Host.Example", "host.example"),
        ("host.example.", "host.example"),
        ("my_host.lan", "my_host.lan"),  # _ tolerated for endpoints
        ("bücher.example", "xn--bcher-kva.example"),
        ("192.168.1.10", "192.168.1.10"),
        ("2001:DB8::1", "2001:db8::1"),
        ("10.1", None),  # a malformed address, not a name
        ("-x.example", None),
        ("a..b", None),
        ("", None),
        ("x" * 254, None),
        ("*.example", None),
    ],
)
def test_endpoint_host(host: str, expected: str | None) -> None:
    """Endpoint hosts: addresses, or names whose labels may hold ``_``."""
    assert names.normalize_endpoint_host(host) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("*.Example.Test.", "*.example.test"),
        ("Bücher.example", "xn--bcher-kva.example"),
        ("a..b", None),
        (f"{LONG_LABEL}.test", None),
        ("", None),
    ],
)
def test_san_name(name: str, expected: str | None) -> None:
    """SAN names are compared lower case, IDNA encoded, ``*`` kept."""
    assert names.normalize_san_name(name) == expected


def test_clean_name_and_ip_address() -> None:
    """Cleaning only strips and lowers; addresses may be bracketed."""
    assert names.clean_name(" A.B.. ") == "a.b"
    assert str(names.ip_address("[::1]")) == "::1"
    assert names.ip_address("example.test") is None


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.test", "example.test", True),
        ("EXAMPLE.test", "example.TEST", True),
        ("example.test.", "example.test", True),
        ("example.test", "example.test.", True),
        ("example.test", "www.example.test", False),
        ("*.example.test", "www.example.test", True),
        ("*.example.test", "WWW.Example.Test", True),
        ("*.example.test", "example.test", False),
        ("*.example.test", "a.b.example.test", False),
        ("*.example.test", ".example.test", False),
        ("*.test", "example.test", False),
        ("*.com", "example.com", False),
        ("*", "localhost", False),
        ("w*.example.test", "www.example.test", False),
        ("*w.example.test", "www.example.test", False),
        ("www.*.test", "www.example.test", False),
        ("*.*.example.test", "a.b.example.test", False),
        ("*.example.test", "*.example.test", False),
        ("xn--bcher-kva.example", "bücher.example", True),
        ("bücher.example", "xn--bcher-kva.example", True),
        ("*.xn--bcher-kva.example", "www.bücher.example", True),
        ("*.bücher.example", "www.xn--bcher-kva.example", True),
        ("127.0.0.1", "127.0.0.1", False),
        ("example..test", "example..test", False),
        ("", "example.test", False),
        ("example.test", "", False),
    ],
)
def test_hostname_matches(pattern: str, host: str, expected: bool) -> None:
    """RFC 6125 matching rules for DNS-name SANs."""
    assert names.hostname_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("dns_names", "ip_addresses", "host", "expected"),
    [
        ([], ["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], [], "127.0.0.1", False),
        ([], ["::1"], "0:0::1", True),
        ([], ["::1"], "[::1]", True),
        ([], ["127.0.0.1"], "127.0.0.2", False),
        (["*.example.test"], ["127.0.0.1"], "api.example.test", True),
        (["*.example.test"], [], "example.test", False),
    ],
)
def test_names_cover_host(
    dns_names: Sequence[str], ip_addresses: Sequence[str], host: str, expected: bool
) -> None:
    """IP hosts match only IP SANs, names only DNS SANs."""
    assert names.names_cover_host(dns_names, ip_addresses, host) is expected


def test_names_that_cannot_be_idna_encoded_never_match() -> None:
    """A label too long for IDNA matches nothing; a valid IDN matches its A-label."""
    too_long = "\u00fc" * 70 + ".example"
    assert names.hostname_matches(too_long, too_long) is False
    assert names.names_cover_host([too_long], [], too_long) is False
    assert (
        names.hostname_matches("xn--bcher-kva.example", "B\u00fccher.example") is True
    )
