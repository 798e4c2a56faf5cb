"""protocol/pinhole.py against Debian's miniupnpd's IPv6 firewall (WANIPv6FirewallControl).

The test runs on the home's LAN host and asks the router over IPv6, from
the address the pinhole is for (miniupnpd refuses anything else);
connections from the internet come from the provider's namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from custom_components.secure_remote_access.protocol.pinhole import (
    MAX_PINHOLE_LEASE,
    PinholeRequest,
    PinholeTraffic,
)
from custom_components.secure_remote_access.protocol.port_forward import (
    ForwardError,
    Refusal,
)
from custom_components.secure_remote_access.protocol.remote_access import (
    Hairpin,
    hairpin_probe,
)
from tests.fakes import certs
from tests.fakes.miniupnpd import (
    LAN_HOST6,
    LOCATION,
    LOCATION6,
    OTHER_HOST6,
    HomeNetwork,
    NamespaceLoop,
)
from tests.fakes.tls_server import tls_server

from .wan import gateway

NAME = "myhome.duckdns.org"
HA_PORT = 8123
OURS = PinholeRequest(LAN_HOST6, HA_PORT)


async def _refusal(attempt: Callable[[], Awaitable[object]]) -> ForwardError:
    with pytest.raises(ForwardError) as caught:
        await attempt()
    return caught.value


async def _from_internet(provider: NamespaceLoop, ours: frozenset[str]) -> Hairpin:
    """A TLS handshake from the provider to our IPv6 address and port.

    Without a pinhole the router drops the packets: no answer within 2 s.
    """
    return await provider.run(
        hairpin_probe(LAN_HOST6, [HA_PORT], NAME, ours, timeout_seconds=2)
    )


async def test_our_pinhole_lets_the_internet_reach_us_over_ipv6(
    in_lan: HomeNetwork,
) -> None:
    """Closed, opened (asked twice: the same pinhole), reached, closed again."""
    leaf = certs.issue([NAME])
    ours = frozenset({leaf.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    async with (
        tls_server(leaf, host=LAN_HOST6, port=HA_PORT),
        gateway(LOCATION6) as wan,
    ):
        assert wan.firewall is not None
        pinholes = wan.firewall
        status = await pinholes.status()
        before = await _from_internet(provider, ours)
        opened = await pinholes.open(OURS)
        reopened = await pinholes.open(OURS)
        through = await _from_internet(provider, ours)
        traffic = await pinholes.traffic(opened)
        closed = await pinholes.close(OURS)
        after = await _from_internet(provider, ours)
        gone = await _refusal(lambda: pinholes.update(opened, 60))
    assert status.enabled
    assert status.inbound_allowed
    assert before is Hairpin.NO_ANSWER
    assert reopened == opened
    assert through is Hairpin.REACHED_US
    # Debian's nftables backend counts no packets: never "working".
    assert traffic is PinholeTraffic.NO_TRAFFIC_YET
    assert closed == opened
    assert after is Hairpin.NO_ANSWER
    assert gone.reason is Refusal.NO_SUCH_PINHOLE


async def test_pinholes_the_router_refuses(in_lan: HomeNetwork) -> None:
    """Ports below 1024, another host's address, an over-long lease, an unknown id."""
    async with gateway(LOCATION6) as wan:
        assert wan.firewall is not None
        pinholes = wan.firewall
        low = await _refusal(lambda: pinholes.open(PinholeRequest(LAN_HOST6, 443)))
        other = await _refusal(
            lambda: pinholes.open(PinholeRequest(OTHER_HOST6, HA_PORT))
        )
        long = await _refusal(
            lambda: pinholes.open(
                PinholeRequest(LAN_HOST6, HA_PORT, MAX_PINHOLE_LEASE + 1)
            )
        )
        unknown = await _refusal(lambda: pinholes.update(4242, 60))
    assert (low.reason, low.code) == (Refusal.NOT_AUTHORIZED, 606)
    assert (other.reason, other.code) == (Refusal.NOT_AUTHORIZED, 606)
    assert (long.reason, long.code) == (Refusal.INVALID_ARGS, 402)
    # miniupnpd's nftables backend answers 402 for an id it does not know.
    assert (unknown.reason, unknown.code) == (Refusal.NO_SUCH_PINHOLE, 402)


async def test_pinholes_asked_over_ipv4_are_refused(in_lan: HomeNetwork) -> None:
    """The request must come from the pinhole's own IPv6 address."""
    async with gateway(LOCATION) as wan:
        assert wan.firewall is not None
        refused = await _refusal(lambda: wan.firewall.open(OURS))  # type: ignore[arg-type]
    assert refused.reason is Refusal.NOT_AUTHORIZED


async def test_a_router_reboot_forgets_our_pinhole(in_lan: HomeNetwork) -> None:
    """After the reboot the old id is unknown; opening again gives a working one."""
    async with gateway(LOCATION6) as wan:
        assert wan.firewall is not None
        pinholes = wan.firewall
        first = await pinholes.open(OURS)
        await asyncio.to_thread(in_lan.reboot)
        forgotten = await _refusal(lambda: pinholes.update(first, 3600))
        again = await pinholes.open(OURS)
        await pinholes.update(again, 3600)
    assert forgotten.reason is Refusal.NO_SUCH_PINHOLE
