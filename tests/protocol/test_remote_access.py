"""protocol/remote_access.py: the judgement of the facts and the hairpin probe."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from custom_components.secure_remote_access.protocol.remote_access import (
    DNS_MISMATCH_AFTER,
    Facts,
    Finding,
    Hairpin,
    RemoteAccessState,
    hairpin_probe,
    is_public_ipv4,
    judge,
    mismatched_names,
    probe_ports,
)
from custom_components.secure_remote_access.protocol.upnp import (
    GatewayFacts,
    PortMapping,
)
from tests.fakes import certs
from tests.fakes.tls_server import refused_port, tls_server

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PUBLIC = "203.0.113.7"
HOST = "192.168.1.20"
NAME = "myhome.duckdns.org"


def _gateway(wan: str | None = PUBLIC, *mappings: PortMapping) -> GatewayFacts:
    return GatewayFacts("http://192.168.1.1/desc.xml", wan, mappings, HOST)


def _facts(gateway: GatewayFacts | None = None, **kwargs: object) -> Facts:
    return Facts(recorded_ipv4=PUBLIC, gateway=gateway, **kwargs)  # type: ignore[arg-type]


WEB = PortMapping(443, "TCP", 8123, HOST, True)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("203.0.113.7", True),  # documentation range: public for this purpose
        ("8.8.8.8", True),
        ("100.64.0.1", False),
        ("100.127.255.254", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.178.1", False),
        ("169.254.1.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("2001:db8::1", False),
        ("garbage", False),
    ],
)
def test_is_public_ipv4(address: str, public: bool) -> None:
    """CGNAT's 100.64.0.0/10 and RFC 1918 are not public."""
    assert is_public_ipv4(address) is public


def test_unknown_without_gateway_keeps_gateway_findings() -> None:
    """No gateway: unknown with its reason; only DNS can be judged."""
    result = judge(_facts(gateway_reason="no_gateway", resolved={NAME: (PUBLIC,)}), NOW)
    assert result.state is RemoteAccessState.UNKNOWN
    assert result.reason == "no_gateway"
    assert result.evaluated == {Finding.DNS_MISMATCH}
    assert judge(_facts(), NOW).evaluated == frozenset()


def test_reachable_with_a_forward_to_home_assistant() -> None:
    """WAN = public address and 443 forwarded to Home Assistant's port."""
    result = judge(_facts(_gateway(PUBLIC, WEB), serves_https=True), NOW)
    assert result.state is RemoteAccessState.REACHABLE
    assert result.findings == {}


def test_plain_http_forwarded_is_a_finding() -> None:
    """The same forward while Home Assistant serves plain HTTP."""
    result = judge(_facts(_gateway(PUBLIC, WEB)), NOW)
    assert result.findings[Finding.PLAIN_HTTP_FORWARDED] == {
        "ports": "443 → 8123",
        "port": "8123",
    }


def test_no_port_forward_unless_the_hairpin_reached_us() -> None:
    """Mappings to other hosts or disabled ones do not count; a hairpin does."""
    others = _gateway(
        PUBLIC,
        PortMapping(443, "TCP", 8123, "192.168.1.99", True),
        PortMapping(8443, "TCP", 8123, HOST, False),
        PortMapping(8123, "UDP", 8123, HOST, True),
    )
    assert judge(_facts(others), NOW).state is RemoteAccessState.NO_PORT_FORWARD
    reached = _facts(others, hairpin=Hairpin.REACHED_US)
    assert judge(reached, NOW).state is RemoteAccessState.REACHABLE


@pytest.mark.parametrize("wan", ["100.64.12.34", "10.0.0.2", "198.51.100.4"])
def test_carrier_grade_nat(wan: str) -> None:
    """A private or shared WAN address, or one that is not the public one."""
    result = judge(_facts(_gateway(wan, WEB)), NOW)
    assert result.state is RemoteAccessState.CARRIER_GRADE_NAT
    assert result.findings[Finding.CARRIER_GRADE_NAT] == {
        "wan_address": wan,
        "public_address": PUBLIC,
    }


def test_a_pinhole_reaches_the_home_over_ipv6_behind_carrier_grade_nat() -> None:
    """DuckDNS holds this host's IPv6 and our pinhole is open for it: reachable,
    and no CGNAT issue (the home is reachable); without the pinhole, CGNAT."""
    facts = _facts(_gateway("100.64.12.34"), recorded_ipv6="2a0a:ffff:0:77::20")
    assert judge(facts, NOW).state is RemoteAccessState.CARRIER_GRADE_NAT
    opened = judge(replace(facts, ipv6_pinhole_port=8123), NOW)
    assert (opened.state, opened.reason) == (RemoteAccessState.REACHABLE, None)
    assert Finding.CARRIER_GRADE_NAT not in opened.findings
    assert Finding.CARRIER_GRADE_NAT in opened.evaluated
    # No router answered and no IPv4 at all: the pinhole still decides.
    ipv6_only = replace(facts, gateway=None, recorded_ipv4=None, ipv6_pinhole_port=8123)
    assert judge(ipv6_only, NOW).state is RemoteAccessState.REACHABLE
    # DuckDNS holds no IPv6 address: a pinhole cannot be reached by name.
    no_aaaa = replace(facts, recorded_ipv6=None, ipv6_pinhole_port=8123)
    assert judge(no_aaaa, NOW).state is RemoteAccessState.CARRIER_GRADE_NAT


def test_unknown_without_ipv4() -> None:
    """IPv6 only (DuckDNS recorded no IPv4): unknown, the reason says why."""
    facts = replace(_facts(_gateway(PUBLIC, WEB)), recorded_ipv4=None)
    result = judge(facts, NOW)
    assert (result.state, result.reason) == (RemoteAccessState.UNKNOWN, "no_ipv4")


@pytest.mark.parametrize(
    "wan",
    [
        None,
        "2001:db8::1",
        "0.0.0.0",  # noqa: S104 - miniupnpd's "no address"
        "169.254.3.4",
        "127.0.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
    ],
)
def test_unknown_without_a_wan_ipv4(wan: str | None) -> None:
    """No usable IPv4 WAN address: unknown, never carrier-grade NAT."""
    result = judge(_facts(_gateway(wan, WEB)), NOW)
    assert result.state is RemoteAccessState.UNKNOWN
    assert result.reason == "wan_address_unknown"
    assert Finding.CARRIER_GRADE_NAT not in result.findings
    assert Finding.CARRIER_GRADE_NAT not in result.evaluated


def test_carrier_grade_nat_is_found_whatever_the_state() -> None:
    """A DNS mismatch comes first as state, the NAT finding is raised anyway."""
    facts = _facts(
        _gateway("100.64.12.34", WEB),
        resolved={NAME: ("198.51.100.9",)},
        mismatch_since=NOW - DNS_MISMATCH_AFTER,
    )
    result = judge(facts, NOW)
    assert result.state is RemoteAccessState.DNS_MISMATCH
    assert set(result.findings) >= {Finding.DNS_MISMATCH, Finding.CARRIER_GRADE_NAT}
    assert Finding.CARRIER_GRADE_NAT in result.evaluated


def test_port_80_and_ssh_with_password() -> None:
    """Port 80 forwarded, and SSH to the add-on's host port while it takes passwords."""
    gateway = _gateway(
        PUBLIC,
        PortMapping(80, "TCP", 80, HOST, True),
        PortMapping(2222, "TCP", 2222, HOST, True),
    )
    result = judge(_facts(gateway, ssh_password_ports=frozenset({2222})), NOW)
    assert result.findings[Finding.PORT_80_FORWARDED] == {"ports": "80 → 80"}
    assert result.findings[Finding.SSH_FORWARDED_WITH_PASSWORD] == {
        "ports": "2222 → 2222"
    }
    # SSH with keys only: no finding.
    assert (
        Finding.SSH_FORWARDED_WITH_PASSWORD not in judge(_facts(gateway), NOW).findings
    )


def test_dns_mismatch_counts_after_fifteen_minutes() -> None:
    """A name resolving elsewhere is a mismatch only once it lasted 15 minutes."""
    facts = _facts(
        _gateway(PUBLIC, WEB),
        serves_https=True,
        resolved={NAME: ("198.51.100.9",)},
        mismatch_since=NOW,
    )
    assert judge(facts, NOW).state is RemoteAccessState.REACHABLE
    later = judge(facts, NOW + DNS_MISMATCH_AFTER)
    assert later.state is RemoteAccessState.DNS_MISMATCH
    assert later.findings[Finding.DNS_MISMATCH] == {
        "names": NAME,
        "resolved": "198.51.100.9",
        "recorded": PUBLIC,
    }


def test_mismatched_names() -> None:
    """A and, only when DuckDNS recorded one, AAAA must be exactly the recorded ones."""
    resolved = {
        "a.duckdns.org": (PUBLIC, "2001:db8::1"),
        "b.duckdns.org": ("198.51.100.9",),
        "c.duckdns.org": (),
    }
    assert mismatched_names(resolved, PUBLIC, None) == [
        "b.duckdns.org",
        "c.duckdns.org",
    ]
    assert mismatched_names(resolved, PUBLIC, "2001:db8::2") == [
        "a.duckdns.org",
        "b.duckdns.org",
        "c.duckdns.org",
    ]
    assert mismatched_names({}, PUBLIC, None) == []


def test_probe_ports() -> None:
    """Forwarded web ports (at most two), else 443."""
    assert probe_ports(_facts(_gateway())) == (443,)
    many = _gateway(
        PUBLIC,
        *(PortMapping(port, "TCP", 8123, HOST, True) for port in (8443, 443, 9443)),
    )
    assert probe_ports(_facts(many)) == (443, 8443)


async def test_hairpin_probe(socket_enabled: None) -> None:
    """Our certificate: reached us; another: other; nothing listening: no answer."""
    ours = certs.issue([NAME])
    other = certs.issue(["router.example"])

    def loopback(_address: str) -> str:
        return "127.0.0.1"

    fingerprints = frozenset({ours.fingerprint_sha256})
    async with tls_server(ours) as server:
        found = await hairpin_probe(
            PUBLIC, [server.port], NAME, fingerprints, loopback=loopback
        )
    assert found is Hairpin.REACHED_US
    assert server.server_names == [NAME, NAME]  # verifying, then fetching
    async with tls_server(other) as server:
        found = await hairpin_probe(
            PUBLIC, [server.port], NAME, fingerprints, loopback=loopback
        )
    assert found is Hairpin.OTHER_CERTIFICATE
    with refused_port() as port:
        found = await hairpin_probe(
            PUBLIC, [port], NAME, fingerprints, loopback=loopback, timeout_seconds=2
        )
    assert found is Hairpin.NO_ANSWER


def test_refused_mappings_are_unknown_unless_the_hairpin_reached_us() -> None:
    """A refused mapping list: unknown, port findings not judged; hairpin wins."""
    gateway = replace(_gateway(PUBLIC), mappings_refused=True)
    result = judge(_facts(gateway), NOW)
    assert result.state is RemoteAccessState.UNKNOWN
    assert result.reason == "mappings_refused"
    assert Finding.PORT_80_FORWARDED not in result.evaluated
    assert Finding.PLAIN_HTTP_FORWARDED not in result.evaluated
    assert Finding.CARRIER_GRADE_NAT in result.evaluated
    reached = judge(_facts(gateway, hairpin=Hairpin.REACHED_US), NOW)
    assert reached.state is RemoteAccessState.REACHABLE
    assert Finding.PORT_80_FORWARDED not in reached.evaluated


def test_a_name_without_answer_cannot_clear_a_mismatch() -> None:
    """One name answered and matches, the other gave no answer: not judged."""
    other = "other.duckdns.org"
    facts = _facts(
        _gateway(PUBLIC, WEB),
        resolved={NAME: (PUBLIC,)},
        unanswered=frozenset({other}),
    )
    assert Finding.DNS_MISMATCH not in judge(facts, NOW).evaluated
    assert (
        Finding.DNS_MISMATCH
        in judge(replace(facts, unanswered=frozenset()), NOW).evaluated
    )
