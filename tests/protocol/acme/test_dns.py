"""Tests of the TXT propagation checker (against challtestsrv, and the authoritative walk)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pycares
import pytest

from custom_components.secure_remote_access.protocol.acme import (
    DnsPropagationChecker,
    DnsPropagationTimeoutError,
)
from tests.fakes.pebble import PebbleServer


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

    async def fake_query(
        self: DnsPropagationChecker,
        name: str,
        qtype: str,
        servers: Sequence[str] | None,
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

    monkeypatch.setattr(DnsPropagationChecker, "_query", fake_query)
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

    async def fake_query(
        self: DnsPropagationChecker,
        name: str,
        qtype: str,
        servers: Sequence[str] | None,
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

    monkeypatch.setattr(DnsPropagationChecker, "_query", fake_query)
    checker = DnsPropagationChecker(["192.0.2.1", "192.0.2.2:5353"], interval=0.05)
    loop = asyncio.get_running_loop()

    replies.update({"192.0.2.1": txt(b"new"), "192.0.2.2:5353": txt(b"old")})
    with pytest.raises(DnsPropagationTimeoutError) as caught:
        await checker.wait_for_txt("x.duckdns.org", "new", loop.time() + 0.2)
    assert caught.value.seen == ("new", "old")

    replies["192.0.2.2:5353"] = None
    await checker.wait_for_txt("x.duckdns.org", "new", loop.time() + 0.2)
