"""protocol/upnp.py against a real IGD: async_upnp_client's server module on 127.0.0.1.

Faults first: garbage, a gateway that never answers, one that disappears,
one that refuses; then what a working gateway tells.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from ipaddress import IPv4Address
from typing import Any, Self

import aiohttp
from aiohttp import web
from async_upnp_client.aiohttp import AiohttpSessionRequester
from async_upnp_client.client_factory import UpnpFactory
from async_upnp_client.profiles.igd import IgdDevice
import pytest

from custom_components.secure_remote_access.protocol.upnp import (
    MAX_DESCRIPTION_BYTES,
    GatewayError,
    GatewayReason,
    PortMapping,
    local_address_towards,
    query_gateway,
)
from tests.fakes.igd import FakeIgd, GatewayState, Mapping


@pytest.fixture
async def igd(socket_enabled: None) -> AsyncIterator[FakeIgd]:
    """A running test gateway."""
    gateway = FakeIgd()
    await gateway.start()
    yield gateway
    await gateway.stop()


async def _query(location: str, **kwargs: float) -> object:
    async with aiohttp.ClientSession() as session:
        return await query_gateway(session, location, **kwargs)  # type: ignore[arg-type]


async def _reason(location: str, **kwargs: float) -> GatewayReason:
    with pytest.raises(GatewayError) as caught:
        await _query(location, **kwargs)
    return caught.value.reason


@pytest.mark.parametrize("mode", ["garbage", "garbage_soap"])
async def test_garbage_is_an_invalid_reply(igd: FakeIgd, mode: str) -> None:
    """HTML instead of UPnP descriptions or SOAP answers: an invalid reply."""
    igd.state.mode = mode
    assert await _reason(igd.location) is GatewayReason.INVALID_REPLY


async def test_a_gateway_that_never_answers_times_out_in_bounded_time(
    igd: FakeIgd,
) -> None:
    """The whole query is bounded by its time-out."""
    igd.state.mode = "hang"
    assert await _reason(igd.location, timeout_seconds=1) is GatewayReason.TIMEOUT


async def test_a_gateway_that_disappears_is_unreachable(igd: FakeIgd) -> None:
    """Nothing listens any more: unreachable, not a crash."""
    await igd.stop()
    assert await _reason(igd.location) is GatewayReason.UNREACHABLE


async def test_a_gateway_that_refuses_upnp(igd: FakeIgd) -> None:
    """A UPnP error to GetExternalIPAddress (UPnP switched off on the router)."""
    igd.state.mode = "refuse"
    assert await _reason(igd.location) is GatewayReason.REFUSED


async def test_a_device_that_is_no_gateway(
    socket_enabled: None, unused_tcp_port: int
) -> None:
    """A valid UPnP description of something else (a TV) is no gateway."""
    description = """<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major>
<minor>0</minor></specVersion><device>
<deviceType>urn:schemas-upnp-org:device:MediaRenderer:1</deviceType>
<friendlyName>TV</friendlyName><manufacturer>x</manufacturer><modelName>x</modelName>
<UDN>uuid:1</UDN></device></root>"""

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text=description, content_type="text/xml")

    app = web.Application()
    app.router.add_get("/desc.xml", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        reason = await _reason(f"http://127.0.0.1:{unused_tcp_port}/desc.xml")
    finally:
        await runner.cleanup()
    assert reason is GatewayReason.INVALID_REPLY


async def test_garbage_wan_address(igd: FakeIgd) -> None:
    """A WAN address that is no IP address is an invalid reply."""
    igd.state.wan_address = "<b>offline</b>"
    assert await _reason(igd.location) is GatewayReason.INVALID_REPLY


async def test_wan_address_and_mappings_added_through_soap(igd: FakeIgd) -> None:
    """Mappings a client added with the IGD's own AddPortMapping are all read."""
    async with aiohttp.ClientSession() as session:
        device = await UpnpFactory(
            AiohttpSessionRequester(session)
        ).async_create_device(igd.location)
        client = IgdDevice(device, None)
        for external, internal, protocol in ((443, 8123, "TCP"), (51820, 51820, "UDP")):
            await client.async_add_port_mapping(
                IPv4Address("0.0.0.0"),  # noqa: S104
                external,
                protocol,
                internal,
                IPv4Address("192.168.1.20"),
                True,
                "test",
                timedelta(0),
            )
        facts = await query_gateway(session, igd.location)
    assert facts.wan_address == "203.0.113.7"
    assert facts.mappings == (
        PortMapping(443, "TCP", 8123, "192.168.1.20", True),
        PortMapping(51820, "UDP", 51820, "192.168.1.20", True),
    )
    assert not facts.truncated
    assert facts.location == igd.location


async def test_the_number_of_mapping_requests_is_bounded(socket_enabled: None) -> None:
    """A router with many mappings is read up to the bound, and says so."""
    state = GatewayState(
        mappings=[Mapping(1000 + i, "TCP", 1000 + i, "192.168.1.20") for i in range(40)]
    )
    gateway = FakeIgd(state)
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as session:
            facts = await query_gateway(session, gateway.location, max_mappings=5)
    finally:
        await gateway.stop()
    assert len(facts.mappings) == 5
    assert facts.truncated
    # Description, one SCPD, the WAN address, five entries.
    assert state.requests == 8


async def test_an_empty_wan_address_is_hidden(igd: FakeIgd) -> None:
    """miniupnpd answers an empty string for a private or shared WAN address."""
    igd.state.wan_address = ""
    async with aiohttp.ClientSession() as session:
        facts = await query_gateway(session, igd.location)
        assert facts.wan_address is None
        assert facts.wan_address_hidden
        igd.state.wan_address = "0.0.0.0"  # noqa: S104 - no connection at all
        facts = await query_gateway(session, igd.location)
    assert facts.wan_address == "0.0.0.0"  # noqa: S104
    assert not facts.wan_address_hidden


def test_local_address_towards_the_gateway(socket_enabled: None) -> None:
    """Our address on the route to the gateway; none for names or IPv6."""
    assert local_address_towards("http://127.0.0.1:5000/rootDesc.xml") == "127.0.0.1"
    assert local_address_towards("http://router.lan/rootDesc.xml") is None
    assert local_address_towards("http://[::1]:5000/x.xml") is None
    assert local_address_towards("not a url") is None


async def test_a_refused_mapping_list_is_no_empty_list(igd: FakeIgd) -> None:
    """606 to GetGenericPortMappingEntry: the mappings are unknown, not none."""
    igd.state.mappings = [Mapping(80, "TCP", 80, "192.168.1.20")]
    igd.state.mode = "refuse_mappings"
    async with aiohttp.ClientSession() as session:
        facts = await query_gateway(session, igd.location)
    assert facts.wan_address == "203.0.113.7"
    assert facts.mappings == ()
    assert facts.mappings_refused
    igd.state.mode = "ok"
    async with aiohttp.ClientSession() as session:
        facts = await query_gateway(session, igd.location)
    assert not facts.mappings_refused
    assert len(facts.mappings) == 1


async def test_a_truncated_list_asks_for_the_ports_that_matter(
    socket_enabled: None,
) -> None:
    """Past the bound, GetSpecificPortMappingEntry asks for the wanted ports."""
    others = [Mapping(1000 + i, "TCP", 1000 + i, "192.168.1.30") for i in range(20)]
    state = GatewayState(mappings=[*others, Mapping(443, "TCP", 8123, "192.168.1.20")])
    gateway = FakeIgd(state)
    await gateway.start()
    try:
        async with aiohttp.ClientSession() as session:
            facts = await query_gateway(
                session, gateway.location, max_mappings=5, wanted_ports=(80, 443)
            )
    finally:
        await gateway.stop()
    assert facts.truncated
    assert facts.mappings[:5] == tuple(
        PortMapping(m.external_port, "TCP", m.internal_port, m.internal_client, True)
        for m in others[:5]
    )
    assert facts.mappings[5:] == (PortMapping(443, "TCP", 8123, "192.168.1.20", True),)


class _Server:
    """One aiohttp app on a loopback address; counts the requests it got."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.requests: list[str] = []
        self.app = web.Application(middlewares=[self._count])
        self._runner: web.AppRunner | None = None

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def _description(igd: FakeIgd) -> str:
    async with aiohttp.ClientSession() as session, session.get(igd.location) as got:
        return await got.text()


async def test_a_huge_description_is_refused_unread(
    igd: FakeIgd, socket_enabled: None, unused_tcp_port: int
) -> None:
    """A valid description padded past the bound, announced or not: refused."""
    base = f"http://127.0.0.1:{igd.port}/"
    description = (
        (await _description(igd))
        .replace("<SCPDURL>/", f"<SCPDURL>{base}")
        .replace("<controlURL>/", f"<controlURL>{base}")
        .replace("<eventSubURL>/", f"<eventSubURL>{base}")
        .encode()
    )
    padding = b"<!--" + b" " * MAX_DESCRIPTION_BYTES + b"-->"
    sent: list[int] = []

    async def announced(_request: web.Request) -> web.Response:
        return web.Response(body=description + padding, content_type="text/xml")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "text/xml"
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(description + b"<!--")
            for _ in range(64):  # 64 x 64 KiB = 4 MiB, far more than the bound
                await response.write(b" " * 65536)
                sent.append(65536)
            await response.write(b"-->")
        except ConnectionError:
            pass
        return response

    server = _Server("127.0.0.1", unused_tcp_port)
    server.app.router.add_get("/announced.xml", announced)
    server.app.router.add_get("/chunked.xml", chunked)
    async with server:
        assert (
            await _reason(server.url("/announced.xml")) is GatewayReason.INVALID_REPLY
        )
        assert await _reason(server.url("/chunked.xml")) is GatewayReason.INVALID_REPLY
    assert sum(sent) < 64 * 65536


async def test_a_redirect_is_not_followed(
    igd: FakeIgd, socket_enabled: None, unused_tcp_port: int
) -> None:
    """A description URL that redirects (to a working gateway): not followed."""

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound(igd.location)

    server = _Server("127.0.0.1", unused_tcp_port)
    server.app.router.add_get("/rootDesc.xml", redirect)
    async with server:
        reason = await _reason(server.url("/rootDesc.xml"))
    assert reason is GatewayReason.INVALID_REPLY
    assert igd.state.requests == 0


async def test_service_urls_on_another_host_are_refused(
    igd: FakeIgd, socket_enabled: None, unused_tcp_port: int
) -> None:
    """A description whose service URLs lead to another host: nothing asked there."""
    description = await _description(igd)
    other = _Server("127.0.0.2", unused_tcp_port)
    foreign = description.replace(
        "<SCPDURL>/WANIPCn.xml</SCPDURL>",
        f"<SCPDURL>{other.url('/WANIPCn.xml')}</SCPDURL>",
    )
    assert foreign != description

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(text=foreign, content_type="text/xml")

    async def scpd(_request: web.Request) -> web.Response:
        raise web.HTTPNotFound

    other.app.router.add_get("/WANIPCn.xml", scpd)
    server = _Server("127.0.0.1", unused_tcp_port)
    server.app.router.add_get("/rootDesc.xml", serve)
    async with other, server:
        reason = await _reason(server.url("/rootDesc.xml"))
    assert reason is GatewayReason.INVALID_REPLY
    assert other.requests == []
