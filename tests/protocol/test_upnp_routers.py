"""protocol/upnp against real routers' shapes: tests/fakes/router.py on 127.0.0.1.

Faults first: encodings, nesting, size, slow and vanishing routers, replies
that make no sense; then which WAN connection service counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
import pytest

from custom_components.secure_remote_access.protocol.remote_access import (
    Facts,
    RemoteAccessState,
    judge,
)
from custom_components.secure_remote_access.protocol.upnp import (
    IPV6_FIREWALL,
    MAX_DESCRIPTION_BYTES,
    MAX_XML_DEPTH,
    ConnectionKind,
    GatewayError,
    GatewayFacts,
    GatewayReason,
    PortMapping,
    choose_connection,
    open_gateway,
    query_gateway,
)
from tests.fakes.igd import Mapping
from tests.fakes.router import (
    WAN_IP_1,
    Connection,
    ConnectionDevice,
    FakeRouter,
    RouterModel,
    description,
    fault,
    fritzbox,
    igd2_router,
    multi_line_modem,
)

PUBLIC = "203.0.113.7"
LAN = "192.168.178.20"


@pytest.fixture
async def serve(socket_enabled: None) -> AsyncIterator[Callable[..., object]]:
    """Start a router of a given model (stopped after the test)."""
    routers: list[FakeRouter] = []

    async def start(model: RouterModel) -> FakeRouter:
        router = FakeRouter(model)
        await router.start()
        routers.append(router)
        return router

    yield start
    for router in routers:
        await router.stop()


async def _query(router: FakeRouter, **kwargs: object) -> GatewayFacts:
    async with aiohttp.ClientSession() as session:
        return await query_gateway(session, router.location, **kwargs)  # type: ignore[arg-type]


async def _reason(router: FakeRouter, **kwargs: object) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await _query(router, **kwargs)
    return caught.value


def _verdict(facts: GatewayFacts) -> tuple[RemoteAccessState, str | None]:
    judgement = judge(
        Facts(recorded_ipv4=PUBLIC, gateway=facts, host_addresses=frozenset({LAN})),
        datetime.now(UTC),
    )
    return judgement.state, judgement.reason


# ---------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("content_type", "encoding", "declaration", "bom"),
    [
        # UPnP 1.0 only says the charset "should" be named.
        ("text/xml", "utf-8", '<?xml version="1.0"?>', b""),
        ('text/xml; charset="ISO-8859-1"', "iso-8859-1", '<?xml version="1.0"?>', b""),
        ("text/xml", "iso-8859-1", '<?xml version="1.0" encoding="ISO-8859-1"?>', b""),
        ("text/xml", "utf-8", '<?xml version="1.0"?>', b"\xef\xbb\xbf"),
        ("text/xml", "utf-16-le", '<?xml version="1.0"?>', b"\xff\xfe"),
        ('text/xml; charset="no-such-charset"', "utf-8", '<?xml version="1.0"?>', b""),
    ],
)
async def test_any_encoding_a_router_sends_is_read(
    serve: Callable[..., object],
    content_type: str,
    encoding: str,
    declaration: str,
    bom: bytes,
) -> None:
    """No charset, ISO-8859-1 (in the header or the declaration), a BOM: all read."""
    model = fritzbox()
    model.friendly_name = "FRITZ!Box 7590 Küche"
    model.content_type, model.encoding, model.declaration, model.bom = (
        content_type,
        encoding,
        declaration,
        bom,
    )
    model.connections[1].mappings = [Mapping(443, "TCP", 8123, LAN, "Heizung ü")]
    router = await serve(model)
    facts = await _query(router)
    assert facts.router_name == "FRITZ!Box 7590 Küche"
    assert facts.wan_address == PUBLIC
    assert facts.mappings == (PortMapping(443, "TCP", 8123, LAN, True),)


# ------------------------------------------------------ bad descriptions


async def test_a_description_nested_without_end_is_an_invalid_reply(
    serve: Callable[..., object],
) -> None:
    """1,500 nested devices, under the size bound: refused, no RecursionError."""
    model = fritzbox()
    model.nesting = 1500
    assert len(description(model).encode()) < MAX_DESCRIPTION_BYTES
    router = await serve(model)
    error = await _reason(router)
    assert error.reason is GatewayReason.INVALID_REPLY
    assert str(MAX_XML_DEPTH) in error.detail
    model.nesting = 5  # a few levels more than usual are fine
    assert (await _query(router)).wan_address == PUBLIC


async def test_a_huge_description_is_an_invalid_reply(
    serve: Callable[..., object],
) -> None:
    """Padded past 256 KiB: refused."""
    model = fritzbox()
    model.padding = MAX_DESCRIPTION_BYTES
    router = await serve(model)
    assert (await _reason(router)).reason is GatewayReason.INVALID_REPLY


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>Router login</body></html>",
        "not xml at all",
        '<root xmlns="urn:schemas-upnp-org:device-1-0"></root>',
        '<!DOCTYPE r [<!ENTITY a "aaaa">]><root><device/></root>',
        "",
    ],
)
async def test_a_description_that_is_no_gateway(
    serve: Callable[..., object], text: str
) -> None:
    """HTML, no XML, no device, entities, nothing: an invalid reply."""
    router = await serve(fritzbox())
    router.model.description_text = text
    assert (await _reason(router)).reason is GatewayReason.INVALID_REPLY


# ------------------------------------------------------ bad answers


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (200, "<html><body>Please log in</body></html>"),
        (200, "garbage"),
        (200, "<s:Envelope><s:Body></s:Body></s:Envelope>"),
        (500, "<html>Internal error</html>"),
        (404, ""),
        (200, "<a>" * (MAX_XML_DEPTH + 5)),
        (
            200,
            '<!DOCTYPE a [<!ENTITY b "cccccccccc"><!ENTITY d "&b;&b;&b;">]><a>&d;</a>',
        ),
        # An address that is no address at all.
        (
            200,
            (
                "<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'>"
                "<s:Body><u:GetExternalIPAddressResponse xmlns:u='x'>"
                "<NewExternalIPAddress>&lt;b&gt;offline</NewExternalIPAddress>"
                "</u:GetExternalIPAddressResponse></s:Body></s:Envelope>"
            ),
        ),
    ],
)
async def test_an_answer_that_makes_no_sense_is_an_invalid_reply(
    serve: Callable[..., object], status: int, text: str
) -> None:
    """Whatever the connection in use answers to GetExternalIPAddress: no crash."""
    model = fritzbox()
    model.connections[1].raw["GetExternalIPAddress"] = (status, text)
    router = await serve(model)
    assert (await _reason(router)).reason is GatewayReason.INVALID_REPLY


async def test_undeclared_prefixes_and_a_fault_with_status_200_are_read(
    serve: Callable[..., object],
) -> None:
    """Routers get SOAP namespaces wrong, and some send UPnP errors with 200."""
    model = fritzbox()
    ppp = model.connections[1]
    ppp.raw["GetExternalIPAddress"] = (
        200,
        (
            "<s:Envelope><s:Body><u:GetExternalIPAddressResponse>"
            f"<NewExternalIPAddress> {PUBLIC} </NewExternalIPAddress>"
            "</u:GetExternalIPAddressResponse></s:Body></s:Envelope>"
        ),
    )
    ppp.raw["GetGenericPortMappingEntry"] = (
        200,
        (
            "<s:Envelope><s:Body><s:Fault><detail><UPnPError><errorCode>713"
            "</errorCode></UPnPError></detail></s:Fault></s:Body></s:Envelope>"
        ),
    )
    router = await serve(model)
    facts = await _query(router)
    assert facts.wan_address == PUBLIC
    assert facts.mappings == ()
    assert not facts.incomplete


async def test_a_slow_router_is_read_a_silent_one_times_out(
    serve: Callable[..., object],
) -> None:
    """Every answer a little late: read. SOAP never answered: bounded time-out."""
    model = fritzbox()
    model.delay = 0.02
    router = await serve(model)
    assert (await _query(router, timeout_seconds=30)).wan_address == PUBLIC
    model.delay = None
    error = await _reason(router, timeout_seconds=1)
    assert error.reason is GatewayReason.TIMEOUT


async def test_a_router_that_vanishes_mid_query_is_unreachable(
    serve: Callable[..., object],
) -> None:
    """The description comes, then the connection drops and nothing listens."""
    model = fritzbox()
    model.vanish_at = 2
    router = await serve(model)
    assert (await _reason(router)).reason is GatewayReason.UNREACHABLE
    assert not router.running


# ------------------------------------------------------ the WAN connection


async def test_a_pppoe_fritzbox_is_read_through_its_ppp_connection(
    serve: Callable[..., object],
) -> None:
    """The unused WANIPConnection (Disconnected, no address) is not the WAN."""
    model = fritzbox()
    ip, ppp = model.connections
    ip.mappings = [Mapping(9999, "TCP", 9999, LAN)]  # never seen: not in use
    ppp.mappings = [Mapping(80, "TCP", 8123, LAN)]
    router = await serve(model)
    facts = await _query(router)
    assert facts.connection is ConnectionKind.PPP
    assert facts.connection_status == "Connected"
    assert facts.wan_address == PUBLIC
    assert facts.mappings == (PortMapping(80, "TCP", 8123, LAN, True),)
    assert _verdict(facts) == (RemoteAccessState.REACHABLE, None)


async def test_a_hung_unused_connection_service_is_passed_over(
    serve: Callable[..., object],
) -> None:
    """The FRITZ!Box's unused WANIPConnection never answers (it is listed
    first): it costs one request's bound, not the whole query; the PPP
    connection in use is read within the query's time."""
    model = fritzbox()
    ip, ppp = model.connections
    ip.hangs = True
    ppp.mappings = [Mapping(80, "TCP", 8123, LAN)]
    router = await serve(model)
    facts = await _query(router, timeout_seconds=4)
    assert facts.connection is ConnectionKind.PPP
    assert facts.wan_address == PUBLIC
    assert facts.mappings == (PortMapping(80, "TCP", 8123, LAN, True),)
    # The hung one may be the connection in use when no other is up with a
    # public address: not "carrier-grade NAT" from the one with a shared
    # address, the silence is the reason.
    ppp.address = "100.64.0.7"
    assert (await _reason(router, timeout_seconds=4)).reason is GatewayReason.TIMEOUT
    # Every service hung: the query times out, as before.
    ppp.hangs = True
    assert (await _reason(router, timeout_seconds=4)).reason is GatewayReason.TIMEOUT


async def test_every_connection_device_of_a_multi_line_modem_is_asked(
    serve: Callable[..., object],
) -> None:
    """Three WANConnectionDevices of one type: the third line is the one up."""
    model = multi_line_modem()
    model.connections[2].mappings = [Mapping(443, "TCP", 8123, LAN)]
    router = await serve(model)
    facts = await _query(router)
    assert facts.connection is ConnectionKind.PPP
    assert facts.wan_address == PUBLIC
    assert facts.mappings == (PortMapping(443, "TCP", 8123, LAN, True),)
    assert "POST /upnp/control/WANPPPConn3" in model.requests


async def test_the_ipv6_firewall_beside_the_connection_in_use(
    serve: Callable[..., object],
) -> None:
    """IGD:2: the chosen WANIPConnection:2 and the pinhole service of its device."""
    router = await serve(igd2_router())
    async with (
        aiohttp.ClientSession() as session,
        open_gateway(session, router.location, timeout_seconds=5) as gateway,
    ):
        connection = await choose_connection(gateway)
        assert connection.kind is ConnectionKind.IP
        assert connection.service.service_type.endswith("WANIPConnection:2")
        assert [s.service_type for s in gateway.beside(connection, IPV6_FIREWALL)] == [
            "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
        ]
        answer = await connection.call("GetExternalIPAddress")
    assert answer == {"NewExternalIPAddress": PUBLIC}


async def test_a_router_whose_connection_is_down(
    serve: Callable[..., object],
) -> None:
    """Every connection Disconnected without address: unknown, wan_disconnected."""
    model = fritzbox()
    model.connections[1].status, model.connections[1].address = "Disconnected", ""
    router = await serve(model)
    facts = await _query(router)
    assert facts.disconnected
    assert _verdict(facts) == (RemoteAccessState.UNKNOWN, "wan_disconnected")


async def test_answers_cut_short_are_a_broken_reply_not_an_unreachable_router(
    serve: Callable[..., object],
) -> None:
    """Every connection service answers, but each answer ends early: the
    router is there and its replies are broken (invalid_reply), as the
    description cut short says, not gateway_unreachable."""
    model = fritzbox()
    for connection in model.connections:
        connection.cut_short = True
    router = await serve(model)
    assert (await _reason(router)).reason is GatewayReason.INVALID_REPLY


async def test_a_connection_called_unconfigured_with_a_real_address_counts(
    serve: Callable[..., object],
) -> None:
    """Some FRITZ!OS versions list only a WANIPConnection, "Unconfigured", whose
    address is the real one: the address counts, not the word."""
    model = RouterModel(
        friendly_name="FRITZ!Box 7590",
        connection_devices=[
            ConnectionDevice([Connection(WAN_IP_1, "Unconfigured", PUBLIC)])
        ],
    )
    router = await serve(model)
    facts = await _query(router)
    assert facts.wan_address == PUBLIC
    assert _verdict(facts) == (RemoteAccessState.NO_PORT_FORWARD, None)


async def test_a_router_that_refuses_every_address(
    serve: Callable[..., object],
) -> None:
    """GetExternalIPAddress refused by every connection: upnp_refused."""
    model = fritzbox()
    for connection in model.connections:
        connection.refuse["GetExternalIPAddress"] = 606
    router = await serve(model)
    assert (await _reason(router)).reason is GatewayReason.REFUSED


async def test_a_connection_without_status_still_counts_by_its_address(
    serve: Callable[..., object],
) -> None:
    """GetStatusInfo unknown (401) or unreadable: the address decides."""
    model = fritzbox()
    ip, ppp = model.connections
    ppp.refuse["GetStatusInfo"] = 401
    ip.raw["GetStatusInfo"] = (200, "<html/>")
    router = await serve(model)
    facts = await _query(router)
    assert facts.connection is ConnectionKind.PPP
    assert facts.connection_status is None
    assert facts.wan_address == PUBLIC


# ------------------------------------------------------ incomplete lists


async def test_a_long_list_asks_for_the_ports_that_matter(
    serve: Callable[..., object],
) -> None:
    """Past 16 entries, GetSpecificPortMappingEntry; 714 says a port is free."""
    model = fritzbox()
    ppp = model.connections[1]
    ppp.mappings = [Mapping(2000 + i, "TCP", 2000 + i, LAN) for i in range(20)]
    ppp.mappings.append(Mapping(443, "TCP", 8123, LAN))
    router = await serve(model)
    facts = await _query(router, wanted_ports=(443, 80, 2003))
    assert facts.truncated
    assert PortMapping(443, "TCP", 8123, LAN, True) in facts.mappings
    # 443 found, 80 "no such entry", 2003 listed among the first 16.
    assert facts.known_ports >= {443, 80, 2003}
    ppp.refuse["GetSpecificPortMappingEntry"] = 606
    facts = await _query(router, wanted_ports=(443, 80))
    assert not facts.known_ports & {443, 80}
    assert PortMapping(443, "TCP", 8123, LAN, True) not in facts.mappings


async def test_a_refused_list_still_asks_for_the_ports_that_matter(
    serve: Callable[..., object],
) -> None:
    """606 on GetGenericPortMappingEntry: the wanted ports are asked by number."""
    model = fritzbox()
    ppp = model.connections[1]
    ppp.mappings = [Mapping(443, "TCP", 8123, LAN)]
    ppp.refuse["GetGenericPortMappingEntry"] = 606
    router = await serve(model)
    facts = await _query(router, wanted_ports=(443, 80))
    assert facts.mappings_refused
    assert facts.mappings == (PortMapping(443, "TCP", 8123, LAN, True),)
    assert facts.known_ports == {443, 80}
    assert _verdict(facts) == (RemoteAccessState.REACHABLE, None)


async def test_entries_that_make_no_sense_are_skipped(
    serve: Callable[..., object],
) -> None:
    """An empty client, a port out of range, a garbage entry: skipped, counted."""
    model = fritzbox()
    ppp = model.connections[1]
    ppp.mappings = [
        Mapping(80, "TCP", 80, ""),
        Mapping(70000, "TCP", 80, LAN),
        Mapping(443, "TCP", 8123, LAN),
    ]
    router = await serve(model)
    facts = await _query(router)
    assert facts.invalid_entries == 2
    assert facts.incomplete
    assert facts.mappings == (PortMapping(443, "TCP", 8123, LAN, True),)


# ------------------------------------------------------ review: routers' quirks


@pytest.mark.parametrize(
    ("ip_status", "ip_address", "ip_raw", "kind", "wan"),
    [
        # Dual access: the IP connection on the ISP's local network.
        ("Connected", "10.20.30.40", None, ConnectionKind.PPP, PUBLIC),
        # The unused IP connection answers a 501 page.
        ("Disconnected", "", (501, "<html>501</html>"), ConnectionKind.PPP, PUBLIC),
        # Carrier-grade NAT on the only connection up: it counts.
        ("Disconnected", "", None, ConnectionKind.PPP, "100.64.1.2"),
    ],
)
async def test_the_connection_in_use_beside_quirky_ones(
    serve: Callable[..., object],
    ip_status: str,
    ip_address: str,
    ip_raw: tuple[int, str] | None,
    kind: ConnectionKind,
    wan: str,
) -> None:
    """Connected with a public address beats Connected with a private one;
    a service answering no SOAP is passed over."""
    model = fritzbox(PUBLIC if wan == PUBLIC else wan)
    ip = model.connections[0]
    ip.status, ip.address = ip_status, ip_address
    if ip_raw is not None:
        ip.raw["GetExternalIPAddress"] = ip_raw
    facts = await _query(await serve(model))  # type: ignore[arg-type]
    assert (facts.connection, facts.wan_address) == (kind, wan)


@pytest.mark.parametrize("code", [402, 501])
async def test_a_list_that_ends_with_another_error(
    serve: Callable[..., object], code: int
) -> None:
    """Past its last mapping the router answers 402 Invalid Args or 501
    Action Failed, not 713: the mappings listed count and the ports that
    matter are asked by number (not "the router refused to list")."""
    model = fritzbox()
    ppp = model.connections[1]
    ppp.mappings = [Mapping(8123, "TCP", 8123, LAN)]
    ppp.past_end = (500, fault(code, "Invalid Args"))
    facts = await _query(await serve(model), wanted_ports=(8123, 80))  # type: ignore[arg-type]
    assert [m.external_port for m in facts.mappings] == [8123]
    assert facts.truncated and not facts.mappings_refused
    assert facts.known_ports == {8123, 80}


async def test_a_stale_url_base_and_a_garbled_end_of_list(
    serve: Callable[..., object],
) -> None:
    """URLBase on another host is ignored; a garbled fault past the last
    mapping ends an incomplete list, the mappings before it count."""
    model = fritzbox()
    ppp = model.connections[1]
    ppp.mappings = [Mapping(8123, "TCP", 8123, LAN)]
    ppp.past_end = (500, "<s:Envelope><s:Body><s:Fault>garbled")
    model.description_text = description(model).replace(
        "</specVersion>", "</specVersion><URLBase>http://0.0.0.0:5431/</URLBase>"
    )
    facts = await _query(await serve(model), wanted_ports=(8123, 80))  # type: ignore[arg-type]
    assert [m.external_port for m in facts.mappings] == [8123]
    assert facts.truncated and not facts.mappings_refused
    assert facts.known_ports == {8123, 80}
