"""protocol/port_forward.py against Debian's miniupnpd (tests/fakes/miniupnpd.py).

The test runs on the home's LAN host (``in_lan``), as Home Assistant
would. What the router really holds is read with miniupnpc (``upnpc -l``)
from another LAN host, and connections from the internet come from the
provider's namespace. Faults first: refusals, other hosts' mappings,
leases that run out, a router that reboots or goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from custom_components.secure_remote_access.protocol.port_forward import (
    Ensured,
    ForwardError,
    MappingRequest,
    Owner,
    PortForwarder,
    Refusal,
    belongs_to,
    check_incoming,
)
from custom_components.secure_remote_access.protocol.remote_access import (
    Hairpin,
    hairpin_probe,
)
from tests.fakes import certs
from tests.fakes.miniupnpd import (
    HTTPS_PERMISSIONS,
    LAN_HOST,
    LOCATION,
    OTHER_HOST,
    WAN_ADDRESS,
    HomeNetwork,
    RouterConfig,
    RouterMapping,
)
from tests.fakes.tls_server import tls_server

from .wan import gateway

NAME = "myhome.duckdns.org"
HA_PORT = 8123
OURS = Owner("Secure Remote Access 01TEST", LAN_HOST)
HTTPS_ALLOWED = pytest.mark.parametrize(
    "router_config", [RouterConfig(permissions=HTTPS_PERMISSIONS)]
)


def _request(external_port: int = 8443, **changes: int) -> MappingRequest:
    return MappingRequest(external_port, HA_PORT, OURS, **changes)


def _listed(external_port: int, owner: Owner = OURS) -> RouterMapping:
    return RouterMapping(
        external_port, "TCP", owner.internal_client, HA_PORT, owner.description, 0
    )


async def _router_list(home: HomeNetwork) -> list[RouterMapping]:
    return await asyncio.to_thread(home.mappings)


async def _refusal(attempt: Callable[[], object]) -> ForwardError:
    with pytest.raises(ForwardError) as caught:
        await attempt()  # type: ignore[misc]
    return caught.value


async def _until_gone(home: HomeNetwork, external_port: int) -> None:
    """Wait (bounded) until the router's own list lacks ``external_port``."""
    async with asyncio.timeout(60):
        while external_port in {m.external_port for m in await _router_list(home)}:
            await asyncio.sleep(0.2)


async def test_our_forward_reaches_home_assistant_from_the_internet(
    in_lan: HomeNetwork,
) -> None:
    """Added, listed by the router, and a TLS handshake from the internet meets us.

    From the LAN the router does not loop back (miniupnpd's DNAT rules
    match its WAN interface only): the incoming check says so.
    """
    leaf = certs.issue([NAME])
    ours = frozenset({leaf.fingerprint_sha256})
    provider = in_lan.loop(in_lan.provider)
    async with tls_server(leaf, host=LAN_HOST, port=HA_PORT), gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        result = await forwarder.ensure(_request())
        from_internet = await provider.run(
            hairpin_probe(WAN_ADDRESS, [8443], NAME, ours)
        )
        from_lan = await check_incoming(forwarder, _request(), WAN_ADDRESS, NAME, ours)
    assert result.action is Ensured.ADDED
    assert belongs_to(result.entry, OURS)
    assert 3500 < result.entry.lease_seconds <= 3600
    assert await _router_list(in_lan) == [_listed(8443)]
    assert from_internet is Hairpin.REACHED_US
    assert from_lan.entry == result.entry
    assert from_lan.hairpin is Hairpin.NO_ANSWER
    assert not from_lan.reached_us


async def test_permission_rules_refuse_ports_below_1024(in_lan: HomeNetwork) -> None:
    """miniupnpd's default rules refuse 443 (606); AddAnyPortMapping picks an allowed port."""
    async with gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        refused = await _refusal(lambda: forwarder.add(_request(443)))
        assert await _router_list(in_lan) == []
        picked = await forwarder.add_any(_request(443))
    assert refused.reason is Refusal.NOT_AUTHORIZED
    assert refused.code == 606
    assert picked.external_port >= 1024
    assert await _router_list(in_lan) == [_listed(picked.external_port)]


@HTTPS_ALLOWED
async def test_another_host_already_forwards_443(in_lan: HomeNetwork) -> None:
    """The port is taken: refused with the holder named, never overwritten or removed."""
    await asyncio.to_thread(in_lan.add_mapping, "other", 443, 8443)
    theirs = await _router_list(in_lan)
    async with gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        taken = await _refusal(lambda: forwarder.add(_request(443)))
        kept = await _refusal(lambda: forwarder.ensure(_request(443)))
        left = await _refusal(lambda: forwarder.remove(443, internal_client=LAN_HOST))
        # The router refuses too, when asked without our check first.
        router = await _refusal(
            lambda: PortForwarder(wan.connection)._call(
                "AddPortMapping", _request(443).arguments()
            )
        )
        picked = await forwarder.add_any(_request(443))
    assert taken.reason is Refusal.PORT_TAKEN
    assert OTHER_HOST in taken.detail
    assert kept.reason is Refusal.PORT_TAKEN
    assert left.reason is Refusal.NOT_OURS
    assert (router.reason, router.code) == (Refusal.PORT_TAKEN, 718)
    assert picked.external_port not in (443, 0)
    assert sorted(await _router_list(in_lan), key=lambda m: m.external_port) == sorted(
        [*theirs, _listed(picked.external_port)],
        key=lambda m: m.external_port,
    )


async def test_a_second_entry_cannot_take_our_port(in_lan: HomeNetwork) -> None:
    """Same host, another description (a second entry): miniupnpd would
    overwrite ours silently, so the writer refuses first."""
    other_entry = MappingRequest(
        8443, 8124, Owner("Secure Remote Access 02OTHER", LAN_HOST)
    )
    async with gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        await forwarder.add(_request())
        taken = await _refusal(lambda: forwarder.add(other_entry))
        left = await _refusal(
            lambda: forwarder.remove(
                8443,
                internal_client=LAN_HOST,
                description=other_entry.owner.description,
            )
        )
    assert taken.reason is Refusal.PORT_TAKEN
    assert left.reason is Refusal.NOT_OURS
    assert await _router_list(in_lan) == [_listed(8443)]


async def test_a_short_lease_is_renewed_and_added_again_when_it_ran_out(
    in_lan: HomeNetwork,
) -> None:
    """A 60 s lease: kept while enough is left, renewed before it ends; a
    lease that ran out (the router dropped the mapping) is added again.

    (miniupnpd schedules its clean-up by the earliest lease it was given:
    the lease that runs out is on a port of its own.)
    """
    minute, short = _request(lease_seconds=60), _request(8444, lease_seconds=2)
    async with gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        added = await forwarder.add(minute)
        present = await forwarder.ensure(minute)
        renewed = await forwarder.ensure(minute, renew_below=3600)
        await forwarder.add(short)
        await _until_gone(in_lan, 8444)
        again = await forwarder.ensure(short)
    assert 0 < added.lease_seconds <= 60
    assert present.action is Ensured.PRESENT
    assert renewed.action is Ensured.EXTENDED
    assert 0 < renewed.entry.lease_seconds <= 60
    assert again.action is Ensured.ADDED
    assert sorted(m.external_port for m in await _router_list(in_lan)) == [8443, 8444]


async def test_a_router_that_forgets_mappings_on_reboot(in_lan: HomeNetwork) -> None:
    """After a reboot that kept one of our two mappings, the other is added again."""
    https, second = _request(8443), _request(8444)
    async with gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        await forwarder.add(https)
        await forwarder.add(second)
        await asyncio.to_thread(in_lan.reboot, keep=(8444,))
        one_forgotten = [await forwarder.ensure(r) for r in (https, second)]
        await asyncio.to_thread(in_lan.reboot)
        all_forgotten = [await forwarder.ensure(r) for r in (https, second)]
    assert [r.action for r in one_forgotten] == [Ensured.ADDED, Ensured.PRESENT]
    assert [r.action for r in all_forgotten] == [Ensured.ADDED, Ensured.ADDED]
    assert sorted(m.external_port for m in await _router_list(in_lan)) == [8443, 8444]


async def test_removes_our_forward_only(in_lan: HomeNetwork) -> None:
    """Ours goes (and stays gone); another host's mapping is refused and kept."""
    await asyncio.to_thread(in_lan.add_mapping, "other", 9000, 9000)
    theirs = await _router_list(in_lan)
    async with gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        ours = await forwarder.add(_request())
        removed = await forwarder.remove(
            8443, internal_client=LAN_HOST, description=OURS.description
        )
        gone = await forwarder.remove(8443, internal_client=LAN_HOST)
        foreign = await _refusal(
            lambda: forwarder.remove(9000, internal_client=LAN_HOST)
        )
    assert removed == ours
    assert gone is None
    assert foreign.reason is Refusal.NOT_OURS
    assert await _router_list(in_lan) == theirs


@pytest.mark.parametrize("router_config", [RouterConfig(igd_v1=True)])
async def test_a_router_without_igdv2(in_lan: HomeNetwork) -> None:
    """IGDv1: no AddAnyPortMapping and no IPv6 firewall service; AddPortMapping works."""
    async with gateway(LOCATION) as wan:
        forwarder = PortForwarder(wan.connection)
        unsupported = await _refusal(lambda: forwarder.add_any(_request()))
        await forwarder.add(_request())
    assert wan.firewall is None
    assert not forwarder.picks_free_ports
    assert unsupported.reason is Refusal.NOT_SUPPORTED
    assert await _router_list(in_lan) == [_listed(8443)]


@pytest.mark.parametrize("router_config", [RouterConfig(wan="cgnat")])
async def test_a_router_behind_carrier_grade_nat_fails_every_add(
    in_lan: HomeNetwork,
) -> None:
    """miniupnpd with a shared (100.64/10) WAN address answers 501 ActionFailed."""
    async with gateway(LOCATION) as wan:
        failed = await _refusal(lambda: PortForwarder(wan.connection).add(_request()))
    assert (failed.reason, failed.code) == (Refusal.ACTION_FAILED, 501)
    assert await _router_list(in_lan) == []


async def test_a_router_that_goes_away(in_lan: HomeNetwork) -> None:
    """The daemon stops between reading the description and the change: unreachable."""
    async with gateway(LOCATION) as wan:
        await asyncio.to_thread(in_lan.stop)
        gone = await _refusal(lambda: PortForwarder(wan.connection).add(_request()))
    assert gone.reason is Refusal.UNREACHABLE
