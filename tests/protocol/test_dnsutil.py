"""Tests for protocol/dnsutil.py: the CNAME chase, record picking, NS lookup."""

from __future__ import annotations

from collections.abc import Sequence
import socket
from unittest.mock import patch

import aiodns
import pycares
import pytest

from custom_components.secure_remote_access.protocol import dnsutil
from custom_components.secure_remote_access.protocol.dnsutil import CnameHop
from tests.fakes.pebble import PebbleServer


def _record(name: str, qtype: int, data: object) -> pycares.DNSRecord:
    return pycares.DNSRecord(name=name, type=qtype, record_class=1, ttl=60, data=data)  # type: ignore[arg-type]


def _result(*records: pycares.DNSRecord) -> pycares.DNSResult:
    return pycares.DNSResult(answer=list(records), authority=[], additional=[])


class ChainStep:
    """A step over a fixed CNAME chain that finds a result at ``end``."""

    def __init__(self, chain: dict[str, str], end: str) -> None:
        """Remember the chain; ``asked`` records each name looked at."""
        self.chain = chain
        self.end = end
        self.asked: list[str] = []

    async def __call__(self, name: str) -> str | CnameHop:
        """The result at ``end``, else a hop to the next name."""
        self.asked.append(name)
        if name == self.end:
            return f"found {name}"
        return CnameHop(self.chain[name])


def _gave_up(last: str) -> str:
    return f"gave up at {last}"


async def test_follow_cnames_returns_the_first_outcome() -> None:
    """Each hop is asked once, in order, until a step gives a result."""
    step = ChainStep({"a": "b", "b": "c"}, end="c")
    result = await dnsutil.follow_cnames("a", step, _gave_up)
    assert result == "found c"
    assert step.asked == ["a", "b", "c"]


async def test_follow_cnames_depth_and_loops() -> None:
    """A loop runs to the depth limit, unless told to stop at the first repeat."""
    loop = {"a": "b", "b": "a"}
    step = ChainStep(loop, end="never")
    result = await dnsutil.follow_cnames("a", step, _gave_up)
    assert result == "gave up at a"
    assert len(step.asked) == dnsutil.MAX_CNAME_DEPTH == 8

    step = ChainStep(loop, end="never")
    result = await dnsutil.follow_cnames(
        "a",
        step,
        _gave_up,
        stop_at_loop=True,
    )
    assert result == "gave up at b"
    assert step.asked == ["a", "b"]

    step = ChainStep({"a": "b", "b": "c", "c": "d"}, end="d")
    result = await dnsutil.follow_cnames(
        "a",
        step,
        _gave_up,
        max_depth=2,
    )
    assert result == "gave up at c"


def test_cname_target_picks_the_record_of_the_name() -> None:
    """Only a CNAME owned by the asked name counts; the target is normalized."""
    cname = pycares.QUERY_TYPE_CNAME
    result = _result(
        _record("other.example", cname, pycares.CNAMERecordData("wrong.example")),
        _record("x.example", pycares.QUERY_TYPE_TXT, pycares.TXTRecordData(b"v")),
        _record("X.Example.", cname, pycares.CNAMERecordData("Target.Example.")),
    )
    assert dnsutil.cname_target(result, "x.example") == "target.example"
    assert dnsutil.cname_target(dnsutil.EMPTY_RESULT, "x.example") is None


def test_is_no_data() -> None:
    """NXDOMAIN and NODATA are answers; a timeout is not."""
    assert dnsutil.is_no_data(aiodns.error.DNSError(aiodns.error.ARES_ENOTFOUND, "x"))
    assert dnsutil.is_no_data(aiodns.error.DNSError(aiodns.error.ARES_ENODATA, "x"))
    assert not dnsutil.is_no_data(
        aiodns.error.DNSError(aiodns.error.ARES_ETIMEOUT, "x")
    )
    assert not dnsutil.is_no_data(aiodns.error.DNSError())


async def test_find_authoritative_servers_walks_up_and_prefers_ipv4() -> None:
    """The first zone with NS records gives the servers' addresses, IPv4 first."""
    asked: list[tuple[str, str]] = []
    ns_records = {
        "example.com": ["ns1.example.net", "ns2.example.net"],
    }
    addresses = {
        ("ns1.example.net", "AAAA"): "2001:db8::1",
        ("ns2.example.net", "A"): "192.0.2.2",
    }

    async def query(
        name: str, qtype: str, servers: Sequence[str] | None
    ) -> pycares.DNSResult | None:
        asked.append((name, qtype))
        assert servers is None
        if qtype == "NS":
            if name == "www.example.com":
                return dnsutil.EMPTY_RESULT
            return _result(
                *(
                    _record(name, pycares.QUERY_TYPE_NS, pycares.NSRecordData(host))
                    for host in ns_records.get(name, [])
                )
            )
        if (address := addresses.get((name, qtype))) is None:
            return None
        record_type = pycares.QUERY_TYPE_A if qtype == "A" else pycares.QUERY_TYPE_AAAA
        data = (
            pycares.ARecordData(address)
            if qtype == "A"
            else pycares.AAAARecordData(address)
        )
        return _result(_record(name, record_type, data))

    servers = await dnsutil.find_authoritative_servers("www.example.com", query)
    assert servers == ["192.0.2.2"]
    assert asked[:2] == [("www.example.com", "NS"), ("example.com", "NS")]
    assert ("ns1.example.net", "AAAA") not in asked

    assert await dnsutil.find_authoritative_servers("nowhere.test", query) is None


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "result"),
        (aiodns.error.ARES_ENOTFOUND, "empty"),
        (aiodns.error.ARES_ENODATA, "empty"),
        (aiodns.error.ARES_ETIMEOUT, "raises"),
    ],
)
async def test_fresh_query_closes_its_channel(
    monkeypatch: pytest.MonkeyPatch, error: int | None, outcome: str
) -> None:
    """One channel per query, always closed; no data is an empty result."""
    closed: list[bool] = []
    answer = _result(
        _record("x.test", pycares.QUERY_TYPE_TXT, pycares.TXTRecordData(b"v"))
    )

    class FakeResolver:
        def __init__(self, **kwargs: object) -> None:
            assert kwargs == {"nameservers": ["192.0.2.53"], "timeout": 1.5, "tries": 2}

        async def query_dns(self, name: str, qtype: str) -> pycares.DNSResult:
            if error is not None:
                raise aiodns.error.DNSError(error, "failed")
            return answer

        async def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(dnsutil.aiodns, "DNSResolver", FakeResolver)
    if outcome == "raises":
        with pytest.raises(aiodns.error.DNSError):
            await dnsutil.fresh_query("x.test", "TXT", ["192.0.2.53"], 1.5)
    else:
        result = await dnsutil.fresh_query("x.test", "TXT", ["192.0.2.53"], 1.5)
        assert result is (answer if outcome == "result" else dnsutil.EMPTY_RESULT)
    assert closed == [True]


async def test_lookup_addresses_from_a_real_dns_server(
    socket_enabled: None, pebble: PebbleServer
) -> None:
    """A records from the given server (challtestsrv); None when nothing answers."""
    name = "lookup.duckdns.org"
    await pebble.set_a(name, ["198.51.100.9"])
    try:
        found = await dnsutil.lookup_addresses(name, [pebble.dns_server])
    finally:
        await pebble.clear_a(name)
    assert found is not None
    assert "198.51.100.9" in found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_server:
        silent_server.bind(("127.0.0.1", 0))  # receives, never answers
        port = silent_server.getsockname()[1]
        silent = await dnsutil.lookup_addresses(
            name, [f"127.0.0.1:{port}"], query_timeout=0.5
        )
    assert silent is None


async def test_lookup_addresses_asks_the_zones_own_servers() -> None:
    """Without servers, the zone's authoritative servers are found first."""
    asked: list[tuple[str, str, object]] = []
    ns = _record(
        "duckdns.org", pycares.QUERY_TYPE_NS, pycares.NSRecordData("ns1.duckdns.org")
    )
    ns_a = _record(
        "ns1.duckdns.org", pycares.QUERY_TYPE_A, pycares.ARecordData("127.0.0.53")
    )
    home = _record(
        "myhome.duckdns.org", pycares.QUERY_TYPE_A, pycares.ARecordData("203.0.113.7")
    )

    async def fake_fresh_query(
        name: str, qtype: str, servers: Sequence[str] | None, _timeout: float
    ) -> pycares.DNSResult:
        asked.append((name, qtype, servers))
        if (name, qtype) == ("duckdns.org", "NS"):
            return _result(ns)
        if (name, qtype) == ("ns1.duckdns.org", "A"):
            return _result(ns_a)
        if (name, qtype) == ("myhome.duckdns.org", "A") and servers == ["127.0.0.53"]:
            return _result(home)
        if name == "myhome.duckdns.org" and servers is None:
            raise aiodns.error.DNSError(1, "no")
        return dnsutil.EMPTY_RESULT

    with patch.object(dnsutil, "fresh_query", fake_fresh_query):
        found = await dnsutil.lookup_addresses("myhome.duckdns.org")
        assert found == ("203.0.113.7",)
        assert ("myhome.duckdns.org", "A", ["127.0.0.53"]) in asked

        async def nothing(*_args: object) -> pycares.DNSResult:
            raise aiodns.error.DNSError(12, "timeout")

    with patch.object(dnsutil, "fresh_query", nothing):
        assert await dnsutil.lookup_addresses("myhome.duckdns.org") is None
