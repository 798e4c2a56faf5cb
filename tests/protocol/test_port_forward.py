"""protocol/port_forward.py and pinhole.py against the project's gateway on 127.0.0.1.

The error replies Debian's miniupnpd cannot give (test_*_miniupnpd.py
cover what it can): every UPnP error of AddPortMapping, permanent leases
only, a read-only router, additions and deletions that do not happen, a
router that vanishes in the middle of a change, an IPv6 firewall that is
off or allows no pinholes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from custom_components.secure_remote_access.protocol.pinhole import (
    PinholeRequest,
    Pinholes,
    PinholeTraffic,
)
from custom_components.secure_remote_access.protocol.port_forward import (
    MIN_RENEW_DELAY,
    Ensured,
    ForwardError,
    IncomingCheck,
    MappingRequest,
    Owner,
    PortForwarder,
    Refusal,
    check_incoming,
    renewal_delay,
    same_address,
)
from custom_components.secure_remote_access.protocol.remote_access import Hairpin
from tests.fakes.igd import FakeIgd, Mapping
from tests.fakes.igd_v2 import InternetGatewayDevice2

from .wan import Gateway, gateway

HOST = "127.0.0.1"
OURS = Owner("Secure Remote Access 01TEST", HOST)
HTTPS = MappingRequest(443, 8123, OURS)
PINHOLE = PinholeRequest("2a0a:ffff:0:77::20", 8123)


@pytest.fixture
async def igd(socket_enabled: None) -> AsyncIterator[FakeIgd]:
    """An IGDv1 gateway (no AddAnyPortMapping, no IPv6 firewall)."""
    router = FakeIgd()
    await router.start()
    yield router
    await router.stop()


@pytest.fixture
async def igd2(socket_enabled: None) -> AsyncIterator[FakeIgd]:
    """An IGDv2 gateway with an IPv6 firewall."""
    router = FakeIgd(root=InternetGatewayDevice2)
    await router.start()
    yield router
    await router.stop()


def _short(pinholes: Pinholes) -> Pinholes:
    """The same pinholes, each exchange bounded by 1 s."""
    return Pinholes(pinholes.gateway, pinholes.firewall, timeout_seconds=1)


async def _refusal(attempt: Callable[[], Awaitable[object]]) -> ForwardError:
    with pytest.raises(ForwardError) as caught:
        await attempt()
    return caught.value


async def _on[T](router: FakeIgd, attempt: Callable[[Gateway], Awaitable[T]]) -> T:
    async with gateway(router.location) as wan:
        return await attempt(wan)


async def _refused(
    router: FakeIgd, attempt: Callable[[Gateway], Awaitable[object]]
) -> ForwardError:
    return await _refusal(lambda: _on(router, attempt))


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (402, Refusal.INVALID_ARGS),
        (501, Refusal.ACTION_FAILED),
        (606, Refusal.NOT_AUTHORIZED),
        # 718 ConflictInMappingEntry while no mapping holds the port: old
        # IGDv1 routers refuse ports below 1024 so (not "taken by another").
        (718, Refusal.NOT_AUTHORIZED),
        (724, Refusal.SAME_PORT_REQUIRED),
        (725, Refusal.ONLY_PERMANENT_LEASES),
        (726, Refusal.REMOTE_HOST_WILDCARD_ONLY),
        (727, Refusal.EXTERNAL_PORT_WILDCARD_ONLY),
        (728, Refusal.NO_PORTS_AVAILABLE),
        (729, Refusal.CONFLICT_WITH_OTHER_MECHANISMS),
        (732, Refusal.INTERNAL_PORT_WILDCARD),
        (899, Refusal.UPNP_ERROR),
    ],
)
async def test_every_refusal_has_its_reason(
    igd: FakeIgd, code: int, reason: Refusal
) -> None:
    """The router's UPnP error becomes a reason; nothing is listed."""
    igd.state.add_error = code
    refused = await _refused(igd, lambda wan: PortForwarder(wan.connection).add(HTTPS))
    assert (refused.reason, refused.code) == (reason, code)
    assert igd.state.mappings == []


async def test_an_igdv2_conflict_no_mapping_shows_is_the_port_taken(
    igd2: FakeIgd,
) -> None:
    """An IGDv2 router refuses a port by its rules with 606; its 718 for a
    port that GetSpecificPortMappingEntry shows free is a forward it does
    not list (made in its web interface, or a port the router serves
    itself): taken, never "the router's rules refuse this port"."""
    igd2.state.add_error = 718
    alternative = MappingRequest(8443, 8123, OURS)
    refused = await _refused(
        igd2, lambda wan: PortForwarder(wan.connection).add(alternative)
    )
    assert (refused.reason, refused.code) == (Refusal.PORT_TAKEN, 718)
    assert igd2.state.mappings == []


async def test_a_router_that_only_takes_permanent_leases(igd: FakeIgd) -> None:
    """725 for a lease; a permanent mapping (the caller's choice) is confirmed."""
    igd.state.permanent_only = True
    refused = await _refused(igd, lambda wan: PortForwarder(wan.connection).add(HTTPS))
    permanent = MappingRequest(443, 8123, OURS, lease_seconds=0)
    entry = await _on(igd, lambda wan: PortForwarder(wan.connection).add(permanent))
    assert refused.reason is Refusal.ONLY_PERMANENT_LEASES
    assert igd.state.mappings == [
        Mapping(443, "TCP", 8123, HOST, OURS.description, True, 0)
    ]
    assert entry.lease_seconds == 0
    assert renewal_delay(0) is None


async def test_a_read_only_router(igd: FakeIgd) -> None:
    """UPnP changes switched off: additions and deletions are not authorized."""
    igd.state.mappings = [Mapping(443, "TCP", 8123, HOST, OURS.description)]
    igd.state.mode = "read_only"

    async def remove(wan: Gateway) -> object:
        return await PortForwarder(wan.connection).remove(443, internal_client=HOST)

    added = await _refused(igd, lambda wan: PortForwarder(wan.connection).add(HTTPS))
    removed = await _refused(igd, remove)
    assert added.reason is removed.reason is Refusal.NOT_AUTHORIZED
    assert len(igd.state.mappings) == 1


async def test_an_addition_the_router_does_not_list(igd: FakeIgd) -> None:
    """Accepted but not in the read-back: not confirmed, never a success."""
    igd.state.lists_additions = False
    refused = await _refused(igd, lambda wan: PortForwarder(wan.connection).add(HTTPS))
    assert refused.reason is Refusal.NOT_CONFIRMED


async def test_a_router_that_cuts_descriptions(igd: FakeIgd) -> None:
    """Listed under a shorter description: not provably ours, so not confirmed."""
    igd.state.description_limit = 16
    refused = await _refused(igd, lambda wan: PortForwarder(wan.connection).add(HTTPS))
    assert refused.reason is Refusal.NOT_CONFIRMED
    assert "('Secure Remote Ac')" in refused.detail


async def test_a_deletion_the_router_does_not_do(igd: FakeIgd) -> None:
    """Accepted but still listed: not confirmed."""
    igd.state.mappings = [Mapping(443, "TCP", 8123, HOST, OURS.description)]
    igd.state.keeps_deleted = True
    refused = await _refused(
        igd,
        lambda wan: PortForwarder(wan.connection).remove(443, internal_client=HOST),
    )
    assert refused.reason is Refusal.NOT_CONFIRMED


async def test_a_router_that_vanishes_in_the_middle_of_an_addition(
    igd: FakeIgd,
) -> None:
    """The addition is answered, the read-back never is: a time-out, not a success."""
    igd.state.after_changes = ["hang"]

    async def add(wan: Gateway) -> object:
        return await PortForwarder(wan.connection, timeout_seconds=1).add(HTTPS)

    refused = await _refused(igd, add)
    assert refused.reason is Refusal.TIMEOUT
    assert "GetSpecificPortMappingEntry" in refused.detail
    assert [m.external_port for m in igd.state.mappings] == [443]


async def test_a_router_that_is_gone(igd: FakeIgd) -> None:
    """The description was read, then the router stopped: unreachable."""

    async def add_after_stop(wan: Gateway) -> object:
        await igd.stop()
        return await PortForwarder(wan.connection).add(HTTPS)

    refused = await _refused(igd, add_after_stop)
    assert refused.reason is Refusal.UNREACHABLE


async def test_a_router_that_answers_garbage(igd: FakeIgd) -> None:
    """HTML instead of a SOAP answer: an invalid reply."""

    async def add(wan: Gateway) -> object:
        igd.state.mode = "garbage_soap"
        return await PortForwarder(wan.connection).add(HTTPS)

    refused = await _refused(igd, add)
    assert refused.reason is Refusal.INVALID_REPLY


async def test_an_igdv1_router_picks_no_port(igd: FakeIgd) -> None:
    """No AddAnyPortMapping and no IPv6 firewall service on IGDv1."""

    async def add_any(wan: Gateway) -> object:
        assert wan.firewall is None
        assert not PortForwarder(wan.connection).picks_free_ports
        return await PortForwarder(wan.connection).add_any(HTTPS)

    refused = await _refused(igd, add_any)
    assert refused.reason is Refusal.NOT_SUPPORTED


async def test_an_igdv2_router_picks_a_free_port(igd2: FakeIgd) -> None:
    """443 taken by another host: the router reserves another port, named in its answer."""
    igd2.state.mappings = [Mapping(443, "TCP", 443, "127.0.0.9", "web server")]
    entry = await _on(igd2, lambda wan: PortForwarder(wan.connection).add_any(HTTPS))
    again = await _on(
        igd2,
        lambda wan: PortForwarder(wan.connection).ensure(
            MappingRequest(entry.external_port, 8123, OURS)
        ),
    )
    ours_on_443 = MappingRequest(443, 8123, Owner(OURS.description, "127.0.0.9"))
    igd2.state.mappings[0].description = OURS.description
    kept = await _on(
        igd2, lambda wan: PortForwarder(wan.connection).add_any(ours_on_443)
    )
    assert entry.external_port == 1024
    assert again.action is Ensured.PRESENT
    assert kept.external_port == 443
    assert [m.internal_client for m in igd2.state.mappings] == [HOST, "127.0.0.9"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"firewall_enabled": False}, Refusal.FIREWALL_DISABLED),
        ({"inbound_pinholes_allowed": False}, Refusal.INBOUND_PINHOLE_NOT_ALLOWED),
        ({"add_error": 701}, Refusal.PINHOLE_SPACE_EXHAUSTED),
        ({"add_error": 705}, Refusal.PROTOCOL_NOT_SUPPORTED),
        ({"lists_additions": False}, Refusal.NOT_CONFIRMED),
    ],
)
async def test_pinholes_a_router_refuses(
    igd2: FakeIgd, change: dict[str, object], reason: Refusal
) -> None:
    """The firewall's status tells in advance; opening says why it failed."""
    for name, value in change.items():
        setattr(igd2.state, name, value)

    async def status_then_open(wan: Gateway) -> object:
        assert wan.firewall is not None
        pinholes = wan.firewall
        status = await pinholes.status()
        assert status.enabled is igd2.state.firewall_enabled
        assert status.inbound_allowed is igd2.state.inbound_pinholes_allowed
        return await pinholes.open(PINHOLE)

    refused = await _refused(igd2, status_then_open)
    assert refused.reason is reason
    assert igd2.state.pinholes == {}


async def test_a_pinhole_kept_and_closed(igd2: FakeIgd) -> None:
    """Opened twice (one pinhole), no traffic yet, closed; a close that fails is said."""

    async def keep_and_close(wan: Gateway) -> tuple[object, ...]:
        assert wan.firewall is not None
        pinholes = wan.firewall
        first = await pinholes.open(PINHOLE)
        second = await pinholes.open(PINHOLE)
        traffic = await pinholes.traffic(first)
        igd2.state.keeps_deleted = True
        kept = await _refusal(lambda: pinholes.close(PINHOLE))
        igd2.state.keeps_deleted = False
        closed = await pinholes.close(PINHOLE)
        return first, second, traffic, kept.reason, closed

    first, second, traffic, kept, closed = await _on(igd2, keep_and_close)
    assert first == second == closed
    assert traffic is PinholeTraffic.NO_TRAFFIC_YET
    assert kept is Refusal.NOT_CONFIRMED
    assert igd2.state.pinholes == {}


async def test_a_pinhole_update_out_of_range_is_not_sent(igd2: FakeIgd) -> None:
    """Arguments the standard does not allow are refused before the router sees them."""

    async def update(wan: Gateway) -> int:
        assert wan.firewall is not None
        asked = igd2.state.requests
        refused = await _refusal(lambda: wan.firewall.update(1, 86401))  # type: ignore[arg-type]
        assert refused.reason is Refusal.INVALID_ARGS
        assert refused.code is None
        return igd2.state.requests - asked

    assert await _on(igd2, update) == 0


async def test_pinholes_of_a_router_that_vanishes(igd2: FakeIgd) -> None:
    """Gone after opening (the read-back) or after the first step of closing."""

    async def open_(wan: Gateway) -> Refusal:
        assert wan.firewall is not None
        pinholes = _short(wan.firewall)
        igd2.state.after_changes = ["hang"]
        return (await _refusal(lambda: pinholes.open(PINHOLE))).reason

    async def close(wan: Gateway) -> Refusal:
        assert wan.firewall is not None
        pinholes = _short(wan.firewall)
        await pinholes.open(PINHOLE)
        igd2.state.after_changes = ["hang"]
        return (await _refusal(lambda: pinholes.close(PINHOLE))).reason

    async def close_confirmation(wan: Gateway) -> Refusal:
        assert wan.firewall is not None
        pinholes = _short(wan.firewall)
        igd2.state.after_changes = ["ok", "hang"]
        return (await _refusal(lambda: pinholes.close(PINHOLE))).reason

    for attempt in (open_, close, close_confirmation):
        igd2.state.mode = "ok"
        assert await _on(igd2, attempt) is Refusal.TIMEOUT


async def test_pinhole_traffic(igd2: FakeIgd) -> None:
    """Working once packets went through; an unknown pinhole is said so."""

    async def traffic(wan: Gateway) -> tuple[object, ...]:
        assert wan.firewall is not None
        pinholes = wan.firewall
        unique_id = await pinholes.open(PINHOLE)
        igd2.state.pinholes[unique_id].packets = 3
        unknown = await _refusal(lambda: pinholes.traffic(unique_id + 1))
        return await pinholes.traffic(unique_id), unknown.reason

    assert await _on(igd2, traffic) == (
        PinholeTraffic.WORKING,
        Refusal.NO_SUCH_PINHOLE,
    )


async def test_no_incoming_check_without_our_mapping(igd: FakeIgd) -> None:
    """Nothing to probe when the router does not list our mapping."""

    async def check(wan: Gateway) -> object:
        return await check_incoming(
            PortForwarder(wan.connection), HTTPS, "203.0.113.7", "x.test", frozenset()
        )

    found = await _on(igd, check)
    assert found == IncomingCheck(None, Hairpin.NOT_TRIED)


def test_renewal_halfway_through_the_lease() -> None:
    """Halfway, never sooner than the floor; never for a permanent mapping."""
    assert renewal_delay(3600) == 1800
    assert renewal_delay(20) == MIN_RENEW_DELAY
    assert renewal_delay(0) is None


def test_addresses_compare_as_addresses() -> None:
    """A router may write an address differently (IPv6 zeros, spaces)."""
    assert same_address("2a0a:ffff:0:77:0:0:0:20", "2a0a:ffff:0:77::20")
    assert same_address(" 192.168.1.20", "192.168.1.20")
    assert same_address("HOMEASSISTANT", "homeassistant")
    assert not same_address("192.168.1.20", "192.168.1.21")
