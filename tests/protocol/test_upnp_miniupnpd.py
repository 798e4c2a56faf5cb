"""protocol/upnp.py against Debian's miniupnpd (tests/fakes/miniupnpd.py).

The test runs on the home's LAN host (``in_lan``). A router behind
carrier-grade NAT hides its WAN address and refuses every mapping; a
public one reports its address and the mappings LAN hosts made, which the
remote-access check judges.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest

from custom_components.secure_remote_access.protocol.remote_access import (
    Facts,
    Finding,
    RemoteAccessState,
    judge,
)
from custom_components.secure_remote_access.protocol.upnp import (
    GatewayError,
    GatewayFacts,
    GatewayReason,
    PortMapping,
    local_address_towards,
    query_gateway,
)
from tests.fakes.miniupnpd import (
    LAN_HOST,
    LOCATION,
    OTHER_HOST,
    WAN_ADDRESS,
    HomeNetwork,
    RouterConfig,
)


async def _query() -> GatewayFacts:
    async with aiohttp.ClientSession() as session:
        return await query_gateway(session, LOCATION, timeout_seconds=10)


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
