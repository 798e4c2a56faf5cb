"""Tests of the TXT propagation checker (against challtestsrv, and the authoritative walk)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
import socket

import pycares
import pytest

from custom_components.secure_remote_access.protocol.acme import (
    DnsPropagationChecker,
    DnsPropagationTimeoutError,
)
from custom_components.secure_remote_access.protocol.dnsutil import is_nameserver
from tests.fakes.pebble import PebbleServer


def _answer_queries(
    monkeypatch: pytest.MonkeyPatch,
    answer: Callable[[str, str, Sequence[str] | None], pycares.DNSResult | None],
) -> None:
    """Let ``answer(name, qtype, servers)`` stand in for every DNS query of the checker."""

    async def fake_query(
        self: DnsPropagationChecker,
        name: str,
        qtype: str,
        servers: Sequence[str] | None,
    ) -> pycares.DNSResult | None:
        return answer(name, qtype, servers)

    monkeypatch.setattr(DnsPropagationChecker, "_query", fake_query)


async def test_wait_until_visible(
    pebble: PebbleServer, checker: DnsPropagationChecker, socket_enabled: None
) -> None:
    """The checker keeps polling until the value shows up."""
    record = "_acme-challenge.later.duckdns.org"

    async def publish_later() -> None:
        await asyncio.sleep(0.3)
        await pebble.set_txt(record, "late-value")

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(publish_later())
    started = loop.time()
    try:
        await checker.wait_for_txt("later.duckdns.org", "late-value", loop.time() + 5)
    finally:
        await task
        await pebble.clear_txt(record)
    assert 0.25 < loop.time() - started < 3


async def test_follows_cname(
    pebble: PebbleServer, checker: DnsPropagationChecker, socket_enabled: None
) -> None:
    """A CNAME at _acme-challenge.<name> is followed to the delegated (DuckDNS) record."""
    await pebble.set_cname(
        "_acme-challenge.home.example.com", "_acme-challenge.target.duckdns.org"
    )
    await pebble.set_txt("_acme-challenge.target.duckdns.org", "delegated")
    try:
        loop = asyncio.get_running_loop()
        await checker.wait_for_txt("*.home.example.com", "delegated", loop.time() + 2)
    finally:
        await pebble.clear_cname("_acme-challenge.home.example.com")
        await pebble.clear_txt("_acme-challenge.target.duckdns.org")


async def test_timeout_names_record_and_seen_values(
    pebble: PebbleServer, checker: DnsPropagationChecker, socket_enabled: None
) -> None:
    """A wrong value until the deadline gives a typed error with what was seen."""
    await pebble.set_txt("_acme-challenge.stale.duckdns.org", "old")
    try:
        loop = asyncio.get_running_loop()
        with pytest.raises(DnsPropagationTimeoutError) as caught:
            await checker.wait_for_txt("stale.duckdns.org", "new", loop.time() + 0.3)
    finally:
        await pebble.clear_txt("_acme-challenge.stale.duckdns.org")
    assert caught.value.record == "_acme-challenge.stale.duckdns.org"
    assert caught.value.seen == ("old",)
    assert "old" in str(caught.value)


async def test_unreachable_nameserver_times_out() -> None:
    """No DNS server answering: still a DnsPropagationTimeoutError at the deadline."""
    checker = DnsPropagationChecker(["127.0.0.1:9"], interval=0.05, query_timeout=0.1)
    loop = asyncio.get_running_loop()
    with pytest.raises(DnsPropagationTimeoutError):
        await checker.wait_for_txt("x.duckdns.org", "v", loop.time() + 0.4)


def _record(name: str, qtype: int, data: object) -> pycares.DNSRecord:
    return pycares.DNSRecord(name=name, type=qtype, record_class=1, ttl=60, data=data)  # type: ignore[arg-type]


async def test_authoritative_servers_walk_and_cname(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without given servers: find the zone's NS, ask their addresses, follow a CNAME across zones."""
    asked: list[tuple[str, str, tuple[str, ...] | None]] = []
    ns, txt, cname = (
        pycares.QUERY_TYPE_NS,
        pycares.QUERY_TYPE_TXT,
        pycares.QUERY_TYPE_CNAME,
    )
    zones = {"example.com": ["ns1.example.net"], "duckdns.org": ["ns1.duckdns.org"]}
    addresses = {"ns1.example.net": "192.0.2.1", "ns1.duckdns.org": "192.0.2.2"}

    def answer(
        name: str, qtype: str, servers: Sequence[str] | None
    ) -> pycares.DNSResult | None:
        asked.append((name, qtype, tuple(servers) if servers else None))
        answer: list[pycares.DNSRecord] = []
        if qtype == "NS" and name in zones:
            answer = [
                _record(name, ns, pycares.NSRecordData(host)) for host in zones[name]
            ]
        elif qtype == "A" and name in addresses:
            answer = [
                _record(
                    name, pycares.QUERY_TYPE_A, pycares.ARecordData(addresses[name])
                )
            ]
        elif qtype == "TXT" and name == "_acme-challenge.home.example.com":
            answer = [
                _record(
                    name,
                    cname,
                    pycares.CNAMERecordData("_acme-challenge.me.duckdns.org"),
                )
            ]
        elif qtype == "TXT" and name == "_acme-challenge.me.duckdns.org":
            answer = [_record(name, txt, pycares.TXTRecordData(b"token-value"))]
        return (
            pycares.DNSResult(answer=answer, authority=[], additional=[])
            if answer
            else None
        )

    _answer_queries(monkeypatch, answer)
    checker = DnsPropagationChecker()
    assert await checker.lookup_txt("_acme-challenge.home.example.com") == (
        "token-value",
    )
    txt_queries = [(name, servers) for name, qtype, servers in asked if qtype == "TXT"]
    assert txt_queries == [
        ("_acme-challenge.home.example.com", ("192.0.2.1",)),
        ("_acme-challenge.me.duckdns.org", ("192.0.2.2",)),
    ]


async def test_every_answering_server_must_show_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One lagging server keeps the value invisible; a silent server is ignored."""
    replies: dict[str, pycares.DNSResult | None] = {}

    def answer(
        name: str, qtype: str, servers: Sequence[str] | None
    ) -> pycares.DNSResult | None:
        assert servers is not None
        return replies[servers[0]]

    def txt(value: bytes) -> pycares.DNSResult:
        record = _record(
            "_acme-challenge.x.duckdns.org",
            pycares.QUERY_TYPE_TXT,
            pycares.TXTRecordData(value),
        )
        return pycares.DNSResult(answer=[record], authority=[], additional=[])

    _answer_queries(monkeypatch, answer)
    checker = DnsPropagationChecker(["192.0.2.1", "192.0.2.2:5353"], interval=0.05)
    loop = asyncio.get_running_loop()

    replies.update({"192.0.2.1": txt(b"new"), "192.0.2.2:5353": txt(b"old")})
    with pytest.raises(DnsPropagationTimeoutError) as caught:
        await checker.wait_for_txt("x.duckdns.org", "new", loop.time() + 0.2)
    assert caught.value.seen == ("new", "old")

    replies["192.0.2.2:5353"] = None
    await checker.wait_for_txt("x.duckdns.org", "new", loop.time() + 0.2)


async def test_cname_loop_ends_without_values(
    pebble: PebbleServer, checker: DnsPropagationChecker, socket_enabled: None
) -> None:
    """CNAMEs pointing at each other are followed a bounded number of times only."""
    first, second = (
        "_acme-challenge.loop1.example.com",
        "_acme-challenge.loop2.example.com",
    )
    await pebble.set_cname(first, second)
    await pebble.set_cname(second, first)
    try:
        assert await checker.lookup_txt(first) == ()
        loop = asyncio.get_running_loop()
        with pytest.raises(DnsPropagationTimeoutError) as caught:
            await checker.wait_for_txt("loop1.example.com", "v", loop.time() + 0.2)
    finally:
        await pebble.clear_cname(first)
        await pebble.clear_cname(second)
    assert caught.value.seen == ()


@pytest.fixture
def silent_dns_server(socket_enabled: None) -> Iterator[str]:
    """A UDP port on 127.0.0.1 that receives queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def test_deadline_cuts_a_hanging_query_short(silent_dns_server: str) -> None:
    """A server that never answers does not hold the caller past the deadline."""
    checker = DnsPropagationChecker([silent_dns_server], query_timeout=5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DnsPropagationTimeoutError) as caught:
        await checker.wait_for_txt("x.duckdns.org", "v", started + 0.3)
    assert 0.25 < loop.time() - started < 2
    assert caught.value.record == "_acme-challenge.x.duckdns.org"
    assert caught.value.seen == ()
    assert "last seen: nothing" in str(caught.value)


class FakeDns:
    """Scripted answers per (name, type) for the authoritative-server walk."""

    def __init__(self, answers: dict[tuple[str, str], list[pycares.DNSRecord]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, tuple[str, ...] | None]] = []

    async def query(
        self,
        name: str,
        qtype: str,
        servers: Sequence[str] | None,
    ) -> pycares.DNSResult | None:
        self.asked.append((name, qtype, tuple(servers) if servers else None))
        answer = self.answers.get((name, qtype))
        if answer is None:
            return None
        return pycares.DNSResult(answer=answer, authority=[], additional=[])

    def txt_servers(self) -> list[tuple[str, ...] | None]:
        return [servers for _, qtype, servers in self.asked if qtype == "TXT"]


def _ns(zone: str, host: str) -> pycares.DNSRecord:
    return _record(zone, pycares.QUERY_TYPE_NS, pycares.NSRecordData(host))


def _txt(name: str, value: bytes) -> list[pycares.DNSRecord]:
    return [_record(name, pycares.QUERY_TYPE_TXT, pycares.TXTRecordData(value))]


RECORD = "_acme-challenge.home.example.com"


async def test_walk_uses_ipv6_only_name_servers_and_caches_the_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NS answers for other owners are skipped, IPv6 is used when no IPv4 exists, the zone is cached."""
    fake = FakeDns(
        {
            # A referral-like answer naming another zone's servers: not ours.
            ("home.example.com", "NS"): [_ns("example.net", "ns.example.net")],
            ("example.com", "NS"): [
                _ns("example.com", "ns1.example.com"),
                _ns("example.com", "ns2.example.com"),
            ],
            ("ns2.example.com", "AAAA"): [
                _record(
                    "ns2.example.com",
                    pycares.QUERY_TYPE_AAAA,
                    pycares.AAAARecordData("2001:db8::53"),
                )
            ],
            (RECORD, "TXT"): _txt(RECORD, b"value"),
        }
    )
    monkeypatch.setattr(DnsPropagationChecker, "_query", fake.query)
    checker = DnsPropagationChecker()
    assert await checker.lookup_txt(RECORD) == ("value",)
    assert await checker.lookup_txt(RECORD) == ("value",)
    assert fake.txt_servers() == [("2001:db8::53",), ("2001:db8::53",)]
    ns_queries = [name for name, qtype, _ in fake.asked if qtype == "NS"]
    assert ns_queries == [RECORD, "home.example.com", "example.com"]  # once: cached
    address_queries = [
        (name, qtype) for name, qtype, _ in fake.asked if qtype in ("A", "AAAA")
    ]
    assert address_queries == [
        ("ns1.example.com", "A"),
        ("ns2.example.com", "A"),
        ("ns1.example.com", "AAAA"),
        ("ns2.example.com", "AAAA"),
    ]


async def test_walk_without_reachable_name_servers_uses_the_system_resolver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Name servers without addresses lead to the next zone up, and finally the system resolver."""
    fake = FakeDns(
        {
            ("example.com", "NS"): [_ns("example.com", "ns.lame.example")],
            (RECORD, "TXT"): _txt(RECORD, b"value"),
        }
    )
    monkeypatch.setattr(DnsPropagationChecker, "_query", fake.query)
    checker = DnsPropagationChecker(interval=0.01)
    loop = asyncio.get_running_loop()
    await checker.wait_for_txt("home.example.com", "value", loop.time() + 1)
    assert fake.txt_servers() == [None]
    ns_queries = [name for name, qtype, _ in fake.asked if qtype == "NS"]
    assert ns_queries == [RECORD, "home.example.com", "example.com"]


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8053", True),
        ("::1", True),
        ("[::1]:53", True),
        ("[2001:db8::1]", True),
        ("dns.example.com", False),
        ("127.0.0.1:", False),
        ("127.0.0.1:99999", False),
        ("300.1.1.1", False),
        ("[::1]x", False),
        ("", False),
    ],
)
def test_is_nameserver(text: str, valid: bool) -> None:
    """Only what c-ares accepts as a server address passes."""
    assert is_nameserver(text) is valid
