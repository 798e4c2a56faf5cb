"""The remote-access check through Home Assistant, against a served UPnP IGD.

The gateway is `tests.fakes.igd.FakeIgd` (async_upnp_client's server module on
127.0.0.1); mappings are added through its own SOAP AddPortMapping action.
DuckDNS is the stand-in of tests/fakes/duckdns.py; DuckDNS's name servers are
the ``fake_dns`` fixture. Faults first.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

from aiohasupervisor import SupervisorError, SupervisorNotFoundError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, Unauthorized
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockUser

from custom_components.secure_remote_access import remote_access
from custom_components.secure_remote_access.checklist.models import SshAddon
from custom_components.secure_remote_access.const import (
    CONF_DUCKDNS_URL,
    CONF_UPNP_LOCATION,
    DOMAIN,
)
from custom_components.secure_remote_access.remote_access import (
    DISCOVERY_RECHECK,
    MISMATCH_RECHECK,
)
from tests.fakes import certs
from tests.fakes.igd import FakeIgd, Mapping
from tests.fakes.issuer import FakeCa
from tests.fakes.tls_server import tls_server

from .common import (
    NAME,
    StartDuckDns,
    managed_options,
    mock_entry,
    setup_duckdns_entry,
    setup_integration,
)
from .remote_home import DNS_OPTIONS, LOCAL, PUBLIC, SENSOR, Home

# ---------------------------------------------------------------- faults


async def test_without_ssdp_the_state_is_unknown(
    hass: HomeAssistant, start_duckdns: StartDuckDns
) -> None:
    """Home Assistant's SSDP not loaded: unknown, with the reason; nothing sent."""
    duckdns, url = await start_duckdns(None)
    await setup_duckdns_entry(hass, url, {})
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get(SENSOR)
    assert state is not None
    assert state.state == "unknown"
    assert state.attributes["reason"] == "ssdp_not_loaded"
    assert state.attributes["hairpin"] == "not_tried"


async def test_no_gateway_found(home: Home) -> None:
    """SSDP found no gateway (UPnP off on the router): unknown, no_gateway."""
    home.discoverable = False
    entry = await home.setup()
    assert home.state() == "unknown"
    assert home.attributes()["reason"] == "no_gateway"
    assert home.igd.state.requests == 0
    # SSDP may not have heard the router yet: one early second look.
    coordinator = entry.runtime_data.remote_access
    assert coordinator.update_interval == DISCOVERY_RECHECK
    home.discoverable = True
    assert (await home.check())["state"] == "no_port_forward"
    assert coordinator.update_interval == timedelta(hours=6)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "gateway_invalid_reply"),
        ("garbage_soap", "gateway_invalid_reply"),
        ("refuse", "upnp_refused"),
        ("hang", "gateway_timeout"),
    ],
)
async def test_a_broken_gateway_gives_unknown(
    home: Home, mode: str, reason: str
) -> None:
    """Garbage, a refusal or no answer at all: unknown with the reason, bounded."""
    home.igd.state.mode = mode
    await home.setup()
    assert home.state() == "unknown"
    assert home.attributes()["reason"] == reason
    response = await home.check()
    assert response["state"] == "unknown"
    assert response["reason"] == reason


async def test_a_gateway_that_disappears_keeps_its_issues(home: Home) -> None:
    """Between runs the router goes away: unknown; what it showed stays raised."""
    await home.forward(80, 80)
    await home.setup()
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    await home.igd.stop()
    response = await home.check()
    assert response["state"] == "unknown"
    assert response["reason"] == "gateway_unreachable"
    # Unknown is not "closed": the issue stays until a router says otherwise.
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    await home.igd.start(home.igd.port)
    home.igd.state.mappings.clear()
    await home.check()
    assert home.issues() == {}


async def test_a_refused_mapping_list_keeps_the_port_issues(home: Home) -> None:
    """606 on GetGenericPortMappingEntry: unknown (mappings_refused), issues kept."""
    await home.forward(80, 80)
    await home.setup()
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    home.igd.state.mode = "refuse_mappings"
    response = await home.check()
    assert response["state"] == "unknown"
    assert response["reason"] == "mappings_refused"
    assert home.attributes()["reason"] == "mappings_refused"
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    home.igd.state.mode = "ok"
    home.igd.state.mappings.clear()
    assert (await home.check())["state"] == "no_port_forward"
    assert home.issues() == {}


async def test_a_truncated_mapping_list_never_deletes_port_issues(home: Home) -> None:
    """More than 16 mappings: port issues are only raised, never deleted."""
    await home.forward(8080, 80)
    await home.setup()
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    others = [Mapping(2000 + i, "TCP", 2000 + i, "192.168.1.99") for i in range(16)]
    home.igd.state.mappings[:0] = others
    response = await home.check()
    # 8080 -> 80 is past the bound and no port that is asked for by number.
    assert response["state"] == "unknown"
    assert response["reason"] == "mappings_incomplete"
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    # 443 -> Home Assistant's port, also past the bound, is asked for by number.
    await home.forward(443, 8123)
    response = await home.check()
    assert response["state"] == "reachable"
    assert home.issues() == {
        "port_80_forwarded": ir.IssueSeverity.WARNING,
        "plain_http_forwarded": ir.IssueSeverity.CRITICAL,
    }


async def test_an_igd_wildcard_forwards_every_port(home: Home) -> None:
    """External port 0 (the IGD wildcard) to this host: every port is forwarded."""
    await home.forward(0, 8123)
    await home.setup()
    assert home.state() == "reachable"
    assert home.issues() == {
        "plain_http_forwarded": ir.IssueSeverity.CRITICAL,
        "port_80_forwarded": ir.IssueSeverity.WARNING,
    }


async def test_a_bad_mapping_entry_is_skipped(home: Home) -> None:
    """An entry that makes no sense is skipped; the others still count."""
    home.igd.state.mappings = [
        Mapping(8080, "TCP", 0, LOCAL),  # internal port 0: no such port
        Mapping(80, "TCP", 80, LOCAL),
    ]
    await home.setup()
    assert home.attributes()["reason"] == "mappings_incomplete"
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    # The list stays incomplete; asked for port 80 by number, the router
    # answers NoSuchEntryInArray: the forward is gone.
    home.igd.state.mappings = [Mapping(8080, "TCP", 0, LOCAL)]
    await home.check()
    assert home.issues() == {}


async def test_a_router_silent_for_a_day_loses_its_issues(
    home: Home, freezer: FrozenDateTimeFactory
) -> None:
    """Kept issues survive a restart; after a day without answer they go."""
    await home.forward(80, 80)
    await home.setup()
    issue = ir.async_get(home.hass).async_get_issue(
        DOMAIN,
        f"port_80_forwarded_{home.entry.entry_id}",  # type: ignore[union-attr]
    )
    assert issue is not None
    assert issue.is_persistent
    await home.igd.stop()
    assert (await home.check())["reason"] == "gateway_unreachable"
    freezer.tick(timedelta(hours=23))
    assert (await home.check())["reason"] == "gateway_unreachable"
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    freezer.tick(timedelta(hours=1))
    response = await home.check()
    assert response["state"] == "unknown"
    assert response["reason"] == "gateway_gone"
    assert home.attributes()["reason"] == "gateway_gone"
    assert home.issues() == {}
    # The router answers again and still forwards port 80: raised again.
    await home.igd.start(home.igd.port)
    assert (await home.check())["reason"] is None
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}


async def test_no_ipv4(home: Home) -> None:
    """DuckDNS detects no IPv4 address (the home is IPv6 only): unknown, no_ipv4."""
    home.duckdns.ipv6_only = True
    await home.forward(443, 8123)
    await home.setup()
    assert home.attributes()["public_address"] is None
    assert home.state() == "unknown"
    assert home.attributes()["reason"] == "no_ipv4"
    assert home.attributes()["hairpin"] == "not_tried"


# ---------------------------------------------------------------- states


async def test_reachable_and_plain_http_forwarded(home: Home) -> None:
    """443 -> Home Assistant's port while it serves plain HTTP: reachable, critical."""
    await home.forward(443, 8123)
    await home.forward(51820, 51820, "UDP")
    await home.setup()
    assert home.state() == "reachable"
    attributes = home.attributes()
    assert attributes["public_address"] == PUBLIC
    assert attributes["router_wan_address"] == PUBLIC
    assert attributes["mappings"] == [
        {"external_port": 443, "internal_port": 8123, "protocol": "TCP"},
        {"external_port": 51820, "internal_port": 51820, "protocol": "UDP"},
    ]
    # No reason to give: no attribute the frontend would show as "Unknown".
    assert "reason" not in attributes
    assert home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    # The user deletes the forward on the router.
    home.igd.state.mappings.clear()
    response = await home.check()
    assert response["state"] == "no_port_forward"
    assert home.state() == "no_port_forward"
    assert home.issues() == {}


async def test_carrier_grade_nat(home: Home) -> None:
    """WAN address in 100.64.0.0/10: carrier-grade NAT, issue; gone when it ends."""
    home.igd.state.wan_address = "100.64.12.34"
    await home.setup()
    assert home.state() == "carrier_grade_nat"
    assert home.attributes()["router_wan_address"] == "100.64.12.34"
    assert home.issues() == {"carrier_grade_nat": ir.IssueSeverity.WARNING}
    issue = ir.async_get(home.hass).async_get_issue(
        DOMAIN,
        f"carrier_grade_nat_{home.entry.entry_id}",  # type: ignore[union-attr]
    )
    assert issue is not None
    assert issue.translation_placeholders == {
        "wan_address": "100.64.12.34",
        "public_address": PUBLIC,
    }
    home.igd.state.wan_address = PUBLIC
    assert (await home.check())["state"] == "no_port_forward"
    assert home.issues() == {}


async def test_no_wan_address_is_no_carrier_grade_nat(home: Home) -> None:
    """0.0.0.0 (a router without internet connection): unknown, no NAT issue."""
    home.igd.state.wan_address = "0.0.0.0"  # noqa: S104
    await home.setup()
    assert home.state() == "unknown"
    assert home.attributes()["reason"] == "wan_address_unknown"
    assert home.issues() == {}


async def test_a_hidden_wan_address(home: Home) -> None:
    """An empty WAN address (miniupnpd hiding a private one): its own reason."""
    home.igd.state.wan_address = ""
    await home.setup()
    assert home.state() == "unknown"
    assert home.attributes()["reason"] == "wan_address_hidden"


async def test_a_dns_mismatch_does_not_hide_carrier_grade_nat(
    home: Home,
    fake_dns: dict[str, tuple[str, ...]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """Both hold: the state says dns_mismatch, both issues are raised."""
    home.igd.state.wan_address = "100.64.12.34"
    fake_dns[NAME] = ("198.51.100.9",)
    await home.setup(DNS_OPTIONS)
    assert home.state() == "carrier_grade_nat"
    freezer.tick(timedelta(minutes=16))
    assert (await home.check())["state"] == "dns_mismatch"
    assert home.issues() == {
        "carrier_grade_nat": ir.IssueSeverity.WARNING,
        "dns_mismatch": ir.IssueSeverity.ERROR,
    }


async def test_a_dns_change_runs_the_check(home: Home) -> None:
    """DuckDNS records another public address than the WAN: the check follows."""
    await home.forward(443, 8123)
    await home.setup()
    assert home.state() == "reachable"
    home.duckdns.detected_ipv4 = "198.51.100.4"
    await home.hass.services.async_call(
        DOMAIN,
        "update_dns",
        {"config_entry_id": home.entry.entry_id},  # type: ignore[union-attr]
        blocking=True,
    )
    await home.hass.async_block_till_done(wait_background_tasks=True)
    assert home.state() == "carrier_grade_nat"
    assert "carrier_grade_nat" in home.issues()


async def test_port_80_forwarded(home: Home) -> None:
    """Port 80 forwarded to this host: an issue until the forward is gone."""
    await home.forward(80, 8080)
    await home.setup()
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    home.igd.state.mappings.clear()
    await home.check()
    assert home.issues() == {}


async def test_ssh_forwarded_with_password(home: Home) -> None:
    """The SSH add-on's host port forwarded while it accepts passwords."""
    addon = SshAddon(
        slug="core_ssh",
        name="Terminal & SSH",
        running=True,
        port_exposed=True,
        password_login=True,
        root_login=True,
        host_port=2222,
    )

    async def addons(_hass: HomeAssistant) -> tuple[tuple[SshAddon, ...], bool]:
        return (addon,), True

    await home.forward(2222, 2222)
    with (
        patch.object(remote_access, "is_hassio", return_value=True),
        patch(
            "custom_components.secure_remote_access.checklist.snapshot.async_read_ssh_addons",
            addons,
        ),
    ):
        await home.setup()
        assert home.issues() == {"ssh_forwarded_with_password": ir.IssueSeverity.ERROR}
        addon = replace(addon, password_login=False)
        await home.check()
        assert home.issues() == {}


class _SupervisorAddons:
    """The Supervisor's add-on API: the official SSH add-on, or errors."""

    def __init__(self) -> None:
        self.failing = False
        self.password = "secret"

    async def addon_info(self, slug: str) -> Any:
        """core_ssh with its host port 2222; the others are not installed."""
        if self.failing:
            raise SupervisorError("boom")
        if slug != "core_ssh":
            raise SupervisorNotFoundError(slug)
        return SimpleNamespace(
            name="Terminal & SSH",
            state="started",
            network={"22/tcp": 2222},
            options={"password": self.password},
        )


async def test_an_unreadable_ssh_addon_keeps_the_ssh_issue(home: Home) -> None:
    """A Supervisor error reading the add-on: the SSH finding is not judged."""
    addons = _SupervisorAddons()
    await home.forward(2222, 2222)
    with (
        patch.object(remote_access, "is_hassio", return_value=True),
        patch(
            "homeassistant.components.hassio.get_supervisor_client",
            return_value=SimpleNamespace(addons=addons),
        ),
    ):
        await home.setup()
        assert home.issues() == {"ssh_forwarded_with_password": ir.IssueSeverity.ERROR}
        addons.failing = True
        await home.check()
        assert home.issues() == {"ssh_forwarded_with_password": ir.IssueSeverity.ERROR}
        addons.failing = False
        addons.password = ""
        await home.check()
        assert home.issues() == {}


async def test_dns_mismatch_after_fifteen_minutes(
    home: Home,
    fake_dns: dict[str, tuple[str, ...]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """A name resolving elsewhere: dns_mismatch once it lasted 15 minutes."""
    await home.forward(443, 8123)
    fake_dns[NAME] = ("198.51.100.9",)
    entry = await home.setup(DNS_OPTIONS)
    assert home.state() == "reachable"
    assert "dns_mismatch" not in home.issues()
    assert entry.runtime_data.remote_access.update_interval == MISMATCH_RECHECK
    freezer.tick(timedelta(minutes=16))
    response = await home.check()
    assert response["state"] == "dns_mismatch"
    assert response["resolved"] == {NAME: ["198.51.100.9"]}
    assert home.issues()["dns_mismatch"] is ir.IssueSeverity.ERROR
    fake_dns[NAME] = (PUBLIC,)
    assert (await home.check())["state"] == "reachable"
    assert "dns_mismatch" not in home.issues()
    assert entry.runtime_data.remote_access.update_interval == timedelta(hours=6)


async def test_a_dns_time_out_does_not_reset_the_mismatch_clock(
    home: Home,
    fake_dns: dict[str, tuple[str, ...]],
    freezer: FrozenDateTimeFactory,
) -> None:
    """A name without answer leaves the 15-minute clock and the interval alone."""
    await home.forward(443, 8123)
    fake_dns[NAME] = ("198.51.100.9",)
    entry = await home.setup(DNS_OPTIONS)
    coordinator = entry.runtime_data.remote_access
    freezer.tick(timedelta(minutes=10))
    del fake_dns[NAME]  # DuckDNS's servers time out
    assert (await home.check())["state"] == "reachable"
    assert coordinator.update_interval == MISMATCH_RECHECK
    freezer.tick(timedelta(minutes=6))
    fake_dns[NAME] = ("198.51.100.9",)
    assert (await home.check())["state"] == "dns_mismatch"
    assert "dns_mismatch" in home.issues()
    del fake_dns[NAME]
    await home.check()
    assert "dns_mismatch" in home.issues()
    assert coordinator.update_interval == MISMATCH_RECHECK
    fake_dns[NAME] = (PUBLIC,)
    assert (await home.check())["state"] == "reachable"
    assert "dns_mismatch" not in home.issues()
    assert coordinator.update_interval == timedelta(hours=6)


async def test_hairpin_reaches_us(home: Home, fake_ca: FakeCa, tmp_path: Path) -> None:
    """TLS to the public address (looped back by the "router") shows our certificate."""
    issued = certs.issue([NAME])
    cert, key = issued.write(tmp_path)
    async with tls_server(issued) as server:
        await home.forward(server.port, 8123)
        with patch.object(remote_access, "hairpin_loopback", lambda _a: LOCAL):
            await home.setup(managed_options(cert, key))
            response = await home.check()
    assert response["hairpin"] == "reached_us"
    assert response["state"] == "reachable"
    assert server.server_names[0] == NAME


async def test_the_action_is_for_administrators(
    home: Home, hass_read_only_user: MockUser
) -> None:
    """A non-administrator may not see the router's mappings."""
    entry = await home.setup()
    with pytest.raises(Unauthorized):
        await home.hass.services.async_call(
            DOMAIN,
            "check_remote_access",
            {"config_entry_id": entry.entry_id},
            blocking=True,
            context=Context(user_id=hass_read_only_user.id),
            return_response=True,
        )


async def test_removing_the_entry_removes_its_issues(home: Home) -> None:
    """The entry's remote-access issues go with it."""
    await home.forward(80, 80)
    entry = await home.setup()
    assert home.issues()
    assert await home.hass.config_entries.async_remove(entry.entry_id)
    await home.hass.async_block_till_done()
    assert home.issues() == {}


async def test_gateways_come_from_home_assistants_ssdp(hass: HomeAssistant) -> None:
    """The check reads Home Assistant's SSDP cache (IGD 1 and 2), sends nothing."""
    from homeassistant.helpers.service_info.ssdp import SsdpServiceInfo

    def info(st: str, location: str | None) -> SsdpServiceInfo:
        return SsdpServiceInfo(
            ssdp_usn="uuid:1", ssdp_st=st, upnp={}, ssdp_location=location
        )

    igd1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    igd2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
    cache = {
        igd1: [info(igd1, "http://192.168.1.1:5000/b.xml")],
        igd2: [
            info(igd2, "http://192.168.1.1:5000/a.xml"),
            info(igd2, "http://192.168.1.1:5000/b.xml"),
            info(igd2, None),
        ],
    }

    async def by_st(_hass: HomeAssistant, st: str) -> list[SsdpServiceInfo]:
        return cache.get(st, [])

    assert await remote_access.async_discover_gateways(hass) is None
    hass.config.components.add("ssdp")
    with patch("homeassistant.components.ssdp.async_get_discovery_info_by_st", by_st):
        assert await remote_access.async_discover_gateways(hass) == [
            "http://192.168.1.1:5000/a.xml",
            "http://192.168.1.1:5000/b.xml",
        ]
    # A router that answered over IPv6 last: Home Assistant keeps one entry
    # with that location; its IPv4 one (in all locations) comes first.
    dual = info(igd2, "http://[2a0a:ffff:0:77::1]:5000/c.xml")
    dual.ssdp_all_locations = {"http://192.168.1.1:5000/c.xml", dual.ssdp_location}  # type: ignore[assignment]
    cache[igd2] = [dual]
    with patch("homeassistant.components.ssdp.async_get_discovery_info_by_st", by_st):
        assert await remote_access.async_discover_gateways(hass) == [
            "http://192.168.1.1:5000/b.xml",
            "http://192.168.1.1:5000/c.xml",
            "http://[2a0a:ffff:0:77::1]:5000/c.xml",
        ]


async def test_a_test_gateway_from_the_entry_plays_the_router(
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> None:
    """The testing section's gateway replaces discovery; its host loops back."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = PUBLIC
    igd = FakeIgd()
    await igd.start()
    issued = certs.issue([NAME])
    cert, key = issued.write(tmp_path)
    try:
        async with tls_server(issued) as server:
            home = Home(hass, duckdns, url, igd)
            await home.forward(server.port, 8123)
            entry = mock_entry(
                managed_options(cert, key),
                **{CONF_DUCKDNS_URL: url, CONF_UPNP_LOCATION: igd.location},
            )
            await setup_integration(hass, entry)
            await hass.async_block_till_done(wait_background_tasks=True)
            home.entry = entry
            assert home.attributes()["hairpin"] == "reached_us"
            assert home.state() == "reachable"
    finally:
        await igd.stop()


async def test_an_unexpected_failure_is_a_translated_error(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a run: the action says so (translated, no raw exception text),
    the log has the exception once, the sensor keeps its value."""
    await home.forward(443, 8123)
    entry = await home.setup()
    assert home.state() == "reachable"
    with (
        patch.object(
            type(entry.runtime_data.remote_access),
            "_host_addresses",
            side_effect=RuntimeError("boom"),
        ),
        pytest.raises(HomeAssistantError) as caught,
    ):
        await home.check()
    assert caught.value.translation_key == "remote_access_check_failed"
    assert not caught.value.translation_placeholders
    assert "boom" not in str(caught.value)
    assert caplog.text.count("RuntimeError: boom") == 1
    assert home.state() == "reachable"
