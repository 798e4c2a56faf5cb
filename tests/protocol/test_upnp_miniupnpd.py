"""protocol/upnp against Debian's miniupnpd (tests/fakes/miniupnpd.py).

The test runs on the home's LAN host (``in_lan``). A router behind
carrier-grade NAT hides its WAN address and refuses every mapping; a
public one reports its address and the mappings LAN hosts made, which the
remote-access check judges. A PPPoE-like router (a public address on a
point-to-point link) shows the bounded listing and a link that goes down.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import socket

import aiohttp
from async_upnp_client.search import async_search
from async_upnp_client.utils import CaseInsensitiveDict
import pytest

from custom_components.secure_remote_access.protocol.remote_access import (
    Facts,
    Finding,
    RemoteAccessState,
    judge,
)
from custom_components.secure_remote_access.protocol.upnp import (
    ConnectionKind,
    GatewayError,
    GatewayFacts,
    GatewayReason,
    PortMapping,
    gateway_udn,
    local_address_towards,
    query_gateway,
)
from tests.fakes.miniupnpd import (
    HTTPS_PERMISSIONS,
    LAN_HOST,
    LOCATION,
    LOCATION6,
    OTHER_HOST,
    PPP_WAN_ADDRESS,
    UPNPC,
    WAN_ADDRESS,
    HomeNetwork,
    RouterConfig,
    run,
)

PPPOE = RouterConfig(wan="pppoe", ipv6=False, permissions=HTTPS_PERMISSIONS)


async def _query(wanted: tuple[int, ...] = ()) -> GatewayFacts:
    async with aiohttp.ClientSession() as session:
        return await query_gateway(
            session, LOCATION, timeout_seconds=10, wanted_ports=wanted
        )


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_a_miniupnpd_router_behind_cgnat(in_lan: HomeNetwork) -> None:
    """No WAN address (hidden), no mapping, our LAN address: wan_address_hidden."""
    # A LAN client asking for a forward, as a user's device would: refused.
    with pytest.raises(RuntimeError, match="failed with code 501"):
        await asyncio.to_thread(in_lan.add_mapping, "lan", 8443, 8123)
    facts = await _query()
    local = local_address_towards(LOCATION)  # in this (LAN) thread
    assert facts.location == LOCATION
    assert facts.wan_address is None
    assert facts.wan_address_hidden is True
    assert facts.mappings == ()
    assert local == LAN_HOST
    judgement = judge(
        Facts(
            recorded_ipv4="203.0.113.7",
            gateway=GatewayFacts(LOCATION, None, (), local, wan_address_hidden=True),
        ),
        datetime.now(UTC),
    )
    assert judgement.state is RemoteAccessState.UNKNOWN
    assert judgement.reason == "wan_address_hidden"


async def test_a_public_miniupnpd_router_with_plain_http_forwarded(
    in_lan: HomeNetwork,
) -> None:
    """The WAN address and both LAN hosts' mappings are read; ours is judged."""
    await asyncio.to_thread(in_lan.add_mapping, "lan", 8123, 8123, "manual")
    await asyncio.to_thread(in_lan.add_mapping, "other", 9000, 9000)
    facts = await _query()
    assert facts.wan_address == WAN_ADDRESS
    assert set(facts.mappings) == {
        PortMapping(8123, "TCP", 8123, LAN_HOST, True),
        PortMapping(9000, "TCP", 9000, OTHER_HOST, True),
    }
    judgement = judge(
        Facts(
            recorded_ipv4=WAN_ADDRESS,
            gateway=GatewayFacts(LOCATION, facts.wan_address, facts.mappings, LAN_HOST),
        ),
        datetime.now(UTC),
    )
    assert judgement.state is RemoteAccessState.REACHABLE
    assert set(judgement.findings) == {Finding.PLAIN_HTTP_FORWARDED}


async def test_a_miniupnpd_router_that_stops(in_lan: HomeNetwork) -> None:
    """The router's daemon goes away between two queries: unreachable."""
    assert (await _query()).mappings == ()
    await asyncio.to_thread(in_lan.stop)
    with pytest.raises(GatewayError) as caught:
        await _query()
    assert caught.value.reason is GatewayReason.UNREACHABLE


@pytest.mark.parametrize("router_config", [PPPOE])
async def test_a_pppoe_router_with_a_forward_past_the_list_bound(
    in_lan: HomeNetwork,
) -> None:
    """A public WAN on a point-to-point link; 443 -> 8123 behind 16 other forwards.

    The listing stops at 16 entries; GetSpecificPortMappingEntry finds 443.
    Once the user deletes it, miniupnpd answers 714 NoSuchEntryInArray and the
    plain-HTTP finding is cleared although the list is still incomplete.
    """
    added = await asyncio.to_thread(in_lan.add_mapping, "lan", 443, 8123, "ha")
    assert "is redirected to internal" in added, added
    for port in range(2000, 2016):  # miniupnpd lists the newest first: 443 is 17th
        await asyncio.to_thread(in_lan.add_mapping, "lan", port, port, f"t{port}")
    facts = await _query((80, 443, 8123, 22))
    assert facts.connection is ConnectionKind.IP
    assert facts.connection_status == "Connected"
    assert facts.wan_address == PPP_WAN_ADDRESS
    assert facts.truncated
    assert PortMapping(443, "TCP", 8123, LAN_HOST, True) in facts.mappings
    assert {80, 443, 8123, 22} <= facts.known_ports  # 80, 8123, 22: 714
    now = datetime.now(UTC)
    hosts = frozenset({LAN_HOST})
    judgement = judge(
        Facts(recorded_ipv4=PPP_WAN_ADDRESS, gateway=facts, host_addresses=hosts),
        now,
    )
    assert judgement.state is RemoteAccessState.REACHABLE
    assert Finding.PLAIN_HTTP_FORWARDED in judgement.findings
    assert judgement.evidence[Finding.PLAIN_HTTP_FORWARDED] == {443}

    await asyncio.to_thread(in_lan.lan.exec, UPNPC, "-u", LOCATION, "-d", "443", "TCP")
    facts = await _query((443, 80, 8123, 22))
    assert facts.truncated
    assert 443 in facts.known_ports
    assert all(m.external_port != 443 for m in facts.mappings)
    again = judge(
        Facts(
            recorded_ipv4=PPP_WAN_ADDRESS,
            gateway=facts,
            host_addresses=hosts,
            port_evidence=judgement.evidence,
        ),
        now,
    )
    assert Finding.PLAIN_HTTP_FORWARDED in again.evaluated
    assert Finding.PLAIN_HTTP_FORWARDED not in again.findings
    assert again.reason == "mappings_incomplete"


@pytest.mark.parametrize("router_config", [PPPOE])
async def test_a_pppoe_router_whose_link_goes_down(in_lan: HomeNetwork) -> None:
    """The PPP link down: miniupnpd says Disconnected, no address: wan_disconnected."""
    assert (await _query()).connection_status == "Connected"
    await asyncio.to_thread(
        run, "ip", "-n", in_lan.router.name, "link", "set", "wan0", "down"
    )
    facts = await _query()
    assert facts.connection_status == "Disconnected"
    assert facts.wan_address is None
    judgement = judge(
        Facts(recorded_ipv4=PPP_WAN_ADDRESS, gateway=facts), datetime.now(UTC)
    )
    assert (judgement.state, judgement.reason) == (
        RemoteAccessState.UNKNOWN,
        "wan_disconnected",
    )


async def test_ssdp_over_ipv6_names_the_routers_global_address(
    in_lan: HomeNetwork,
) -> None:
    """Home Assistant's SSDP searches over IPv6 from link-local addresses:
    miniupnpd answers with its description at its global address (where
    pinholes can be asked for from ours) and the UDN of its IPv4 one."""
    address = await asyncio.to_thread(in_lan.lan_link_local)
    index = socket.if_nametoindex("eth0")  # the test's thread is in the LAN
    answers: list[CaseInsensitiveDict] = []

    async def found(headers: CaseInsensitiveDict) -> None:
        answers.append(headers)

    igd2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
    await async_search(
        found,
        timeout=2,
        search_target=igd2,
        source=(address, 0, 0, index),
        target=("ff02::c", 1900, 0, index),
    )
    async with aiohttp.ClientSession() as session:
        udn = await gateway_udn(session, LOCATION, timeout_seconds=10)
        ipv6_udn = await gateway_udn(session, LOCATION6, timeout_seconds=10)
    assert udn is not None
    assert udn == ipv6_udn
    assert {(a["LOCATION"], a["USN"]) for a in answers} == {
        (LOCATION6, f"{udn}::{igd2}")
    }
