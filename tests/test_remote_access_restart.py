"""The remote-access check's memory across a reload and a Home Assistant restart.

Since when a name resolves elsewhere, since when the router is silent, and
which ports raised a port finding live in the entry's Store: a reload or a
restart (a new Home Assistant instance on the same storage, tests/restart.py)
judges from where the last check left off.
"""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.remote_access import (
    MISMATCH_RECHECK,
    REMOTE_ACCESS_INTERVAL,
)
from tests.fakes.igd import Mapping

from .common import NAME
from .remote_home import DNS_OPTIONS, LOCAL, PUBLIC, Home
from .restart import restarted

ELSEWHERE = "198.51.100.9"


async def test_a_dns_mismatch_survives_a_reload_and_a_restart(
    home: Home,
    fake_dns: dict[str, tuple[str, ...]],
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """The issue and the state stay while the name still resolves elsewhere."""
    fake_dns[NAME] = (ELSEWHERE,)
    entry = await home.setup(DNS_OPTIONS)
    freezer.tick(timedelta(minutes=16))
    assert (await home.check())["state"] == "dns_mismatch"
    assert home.issues() == {"dns_mismatch": ir.IssueSeverity.ERROR}

    assert await home.hass.config_entries.async_reload(entry.entry_id)
    await home.hass.async_block_till_done(wait_background_tasks=True)
    assert home.state() == "dns_mismatch"
    assert home.issues() == {"dns_mismatch": ir.IssueSeverity.ERROR}

    freezer.tick(timedelta(minutes=1))
    async with restarted(home.hass, hass_storage) as hass:
        entry = await home.restart(hass)
        assert home.state() == "dns_mismatch"
        assert home.issues() == {"dns_mismatch": ir.IssueSeverity.ERROR}
        assert entry.runtime_data.remote_access.update_interval == MISMATCH_RECHECK
        fake_dns[NAME] = (PUBLIC,)
        assert (await home.check())["state"] == "no_port_forward"
        assert home.issues() == {}
        assert entry.runtime_data.remote_access.update_interval == (
            REMOTE_ACCESS_INTERVAL
        )


async def test_a_short_mismatch_before_a_restart_still_waits_its_15_minutes(
    home: Home,
    fake_dns: dict[str, tuple[str, ...]],
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """The clock started before the restart counts: 10 + 6 minutes is a mismatch."""
    fake_dns[NAME] = (ELSEWHERE,)
    await home.setup(DNS_OPTIONS)
    freezer.tick(timedelta(minutes=10))
    async with restarted(home.hass, hass_storage) as hass:
        await home.restart(hass)
        assert home.state() != "dns_mismatch"
        freezer.tick(timedelta(minutes=6))
        assert (await home.check())["state"] == "dns_mismatch"


async def test_a_silent_router_loses_its_issues_after_a_day_across_restarts(
    home: Home,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """UPnP switched off, Home Assistant restarted twice a day: the kept issue
    still goes after a day of silence, with one warning for the whole outage."""
    await home.forward(80, 80)
    await home.setup()
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    home.discoverable = False
    assert (await home.check())["reason"] == "no_gateway"
    for _ in range(2):
        freezer.tick(timedelta(hours=12))
        async with restarted(home.hass, hass_storage) as hass:
            await home.restart(hass)
            hours_silent = "24" if home.attributes()["reason"] == "gateway_gone" else ""
            if not hours_silent:
                assert home.attributes()["reason"] == "no_gateway"
                assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    assert hours_silent == "24"
    warnings = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("custom_components")
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


async def test_a_silent_router_after_a_restart_is_gone_at_once(
    home: Home,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """Home Assistant was down for two days, the router still silent: gone."""
    await home.forward(80, 80)
    await home.setup()
    await home.igd.stop()
    assert (await home.check())["reason"] == "gateway_unreachable"
    freezer.tick(timedelta(days=2))
    async with restarted(home.hass, hass_storage) as hass:
        await home.restart(hass)
        assert home.attributes()["reason"] == "gateway_gone"
        assert home.issues() == {}


async def test_the_ports_behind_an_issue_survive_a_restart(
    router_home: Home, hass_storage: dict[str, Any]
) -> None:
    """Seen before a restart, deleted after it, past the list bound: the router's
    NoSuchEntryInArray for the remembered port clears the issue."""
    ppp = router_home.router.model.connections[1]
    others = [Mapping(2000 + i, "TCP", 2000 + i, "192.168.178.99") for i in range(20)]
    ppp.mappings = [Mapping(8443, "TCP", 8123, LOCAL), *others]
    await router_home.setup()
    assert router_home.issues() == {"plain_http_forwarded": ir.IssueSeverity.CRITICAL}
    async with restarted(router_home.hass, hass_storage) as hass:
        ppp.mappings = [*others, Mapping(8443, "TCP", 8123, LOCAL)]
        await router_home.restart(hass)
        assert router_home.issues() == {
            "plain_http_forwarded": ir.IssueSeverity.CRITICAL
        }
        ppp.mappings = others
        assert (await router_home.check())["reason"] == "mappings_incomplete"
        assert router_home.issues() == {}


async def test_removing_the_entry_forgets_the_check(
    home: Home,
    fake_dns: dict[str, tuple[str, ...]],
    hass_storage: dict[str, Any],
) -> None:
    """The stored clocks go with the entry."""
    fake_dns[NAME] = (ELSEWHERE,)
    entry = await home.setup(DNS_OPTIONS)
    key = f"{DOMAIN}.remote_access_{entry.entry_id}"
    assert hass_storage[key]["data"]["mismatch_since"] is not None
    assert await home.hass.config_entries.async_remove(entry.entry_id)
    await home.hass.async_block_till_done()
    assert key not in hass_storage


async def test_a_home_without_upnp_keeps_saying_so_after_a_day(
    home: Home,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """UPnP off on the router from the start (a common, safe setting): the
    reason stays no_gateway, across days and restarts; no router has gone,
    and none had issues to remove."""
    home.discoverable = False
    await home.setup()
    assert home.attributes()["reason"] == "no_gateway"
    freezer.tick(timedelta(days=2))
    assert (await home.check())["reason"] == "no_gateway"
    async with restarted(home.hass, hass_storage) as hass:
        await home.restart(hass)
        assert home.attributes()["reason"] == "no_gateway"


async def test_an_upgrade_while_the_router_is_silent_still_drops_its_issues(
    home: Home,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """The version before kept no memory: upgraded while UPnP is already off,
    the issue its router raised still goes after a day of silence."""
    await home.forward(80, 80)
    await home.setup()
    assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
    assert home.entry is not None
    home.discoverable = False
    hass_storage.pop(f"{DOMAIN}.remote_access_{home.entry.entry_id}", None)
    async with restarted(home.hass, hass_storage) as hass:
        await home.restart(hass)  # the new version's first start
        assert home.attributes()["reason"] == "no_gateway"
        assert home.issues() == {"port_80_forwarded": ir.IssueSeverity.WARNING}
        freezer.tick(timedelta(days=1, minutes=1))
        assert (await home.check())["reason"] == "gateway_gone"
        assert home.issues() == {}
