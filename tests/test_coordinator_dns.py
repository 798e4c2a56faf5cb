"""DuckDNS updating through Home Assistant: coordinator, entities, action, repairs."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_TOKEN, STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.const import (
    CONF_DOMAINS,
    CONF_IPV6_ADDRESS,
    CONF_IPV6_MODE,
    CONF_UPDATE_INTERVAL,
    DOMAIN,
)
from custom_components.secure_remote_access.protocol.ipv6 import AddressFlags

from .common import (
    TOKEN,
    advance,
    duckdns_reply,
    mock_entry,
    reply_duckdns,
    setup_integration,
    suggested,
    update_dns,
)

IPV4 = "sensor.myhome_duckdns_org_public_ipv4_address"
IPV6 = "sensor.myhome_duckdns_org_public_ipv6_address"
LAST = "sensor.myhome_duckdns_org_last_dns_update"
PROBLEM = "binary_sensor.myhome_duckdns_org_duckdns_update_status"


def _queries(aioclient_mock: AiohttpClientMocker) -> list[dict[str, str]]:
    return [dict(call[1].query) for call in aioclient_mock.mock_calls]


async def test_entities_after_setup(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    entity_registry: er.EntityRegistry,
) -> None:
    """Several names update in one verbose request; sensors show the result."""
    reply_duckdns(aioclient_mock, duckdns_reply("203.0.113.7"))
    await setup_integration(
        hass, mock_entry(**{CONF_DOMAINS: ["cabin.duckdns.org", "myhome.duckdns.org"]})
    )
    queries = _queries(aioclient_mock)
    assert len(queries) == 1
    assert queries[0]["domains"] == "cabin,myhome"
    assert queries[0]["verbose"] == "true"
    assert "ip" not in queries[0]
    assert "ipv6" not in queries[0]
    prefix = "cabin_duckdns_org"
    assert (
        hass.states.get(f"sensor.{prefix}_public_ipv4_address").state == "203.0.113.7"
    )
    assert (
        hass.states.get(f"binary_sensor.{prefix}_duckdns_update_status").state
        == STATE_OFF
    )
    last = entity_registry.async_get(f"sensor.{prefix}_last_dns_update")
    assert last is not None
    assert last.entity_category == er.EntityCategory.DIAGNOSTIC
    ipv6 = entity_registry.async_get(f"sensor.{prefix}_public_ipv6_address")
    assert ipv6 is not None
    assert ipv6.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert ipv6.unique_id.endswith("_public_ipv6")


async def test_fixed_ipv6_in_its_own_request(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """IPv6 goes in a second request so DuckDNS still detects IPv4."""
    aioclient_mock.get(
        "https://www.duckdns.org/update",
        params={
            "domains": "myhome",
            "token": TOKEN,
            "verbose": "true",
            "ipv6": "2a01:4f8::7",
        },
        text=duckdns_reply("", "2a01:4f8::7", changed=True),
    )
    aioclient_mock.get(
        "https://www.duckdns.org/update",
        params={"domains": "myhome", "token": TOKEN, "verbose": "true"},
        text=duckdns_reply("203.0.113.7", changed=False),
    )
    entry = mock_entry()
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, options={CONF_IPV6_MODE: "fixed", CONF_IPV6_ADDRESS: "2a01:4f8::7"}
    )
    await setup_integration(hass, entry)
    queries = _queries(aioclient_mock)
    assert len(queries) == 2
    assert "ipv6" not in queries[0]
    assert queries[1]["ipv6"] == "2a01:4f8::7"
    assert "ip" not in queries[1]
    assert hass.states.get(IPV6).state == "2a01:4f8::7"
    assert hass.states.get(IPV4).state == "203.0.113.7"
    response = await update_dns(hass, entry.entry_id)
    assert response == {"ipv4": "203.0.113.7", "ipv6": "2a01:4f8::7", "changed": True}


def _adapter(*addresses: str, enabled: bool = True) -> dict[str, Any]:
    return {
        "name": "eth0",
        "index": 2,
        "enabled": enabled,
        "auto": True,
        "default": True,
        "ipv4": [],
        "ipv6": [
            {"address": a, "flowinfo": 0, "scope_id": 0, "network_prefix": 64}
            for a in addresses
        ],
    }


@pytest.mark.parametrize(
    ("adapters", "flags", "sent"),
    [
        pytest.param(
            [
                _adapter(
                    "fe80::1",
                    "fd00::5",
                    "2a01:4f8:1::dead",
                    "2a01:4f8:1::7",
                    "2a01:4f8:1::9",
                ),
                _adapter("2a01:4f8:2::1", enabled=False),
            ],
            {
                "2a01:4f8:1::dead": AddressFlags(temporary=False, unusable=True),
                "2a01:4f8:1::7": AddressFlags(temporary=True, unusable=False),
            },
            [None, "2a01:4f8:1::9"],
            id="stable_global_address",
        ),
        pytest.param([_adapter("fe80::1")], {}, [None], id="no_public_address"),
    ],
)
async def test_automatic_ipv6(
    hass: HomeAssistant,
    mock_duckdns: AiohttpClientMocker,
    adapters: list[dict[str, Any]],
    flags: dict[str, AddressFlags],
    sent: list[str | None],
) -> None:
    """A stable global address goes in its own request; without one only IPv4's.

    Link-local, unique-local, deprecated and temporary addresses are passed over.
    """
    entry = mock_entry(options={CONF_IPV6_MODE: "automatic"})
    with (
        patch(
            "custom_components.secure_remote_access.coordinator.dns.network.async_get_adapters",
            return_value=adapters,
        ),
        patch(
            "custom_components.secure_remote_access.coordinator.dns.read_address_flags",
            return_value=flags,
        ),
    ):
        await setup_integration(hass, entry)
    assert [q.get("ipv6") for q in _queries(mock_duckdns)] == sent


@pytest.mark.usefixtures("init_integration")
async def test_nochange_vs_updated(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
) -> None:
    """The action reports whether DuckDNS changed the record."""
    reply_duckdns(aioclient_mock, duckdns_reply(changed=False))
    response = await update_dns(hass, config_entry.entry_id)
    assert response == {"ipv4": "203.0.113.7", "ipv6": None, "changed": False}


async def test_outage_backs_off_and_recovers(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failures retry after 1, 5, 15, then 30 minutes; entities stay available."""
    reply_duckdns(aioclient_mock)
    await setup_integration(hass, mock_entry())
    caplog.clear()
    caplog.set_level(logging.INFO, logger="custom_components.secure_remote_access")

    outages: list[dict[str, Any]] = [
        {"text": "<html><body>502 Bad Gateway</body></html>"},
        {"status": 404, "text": "Not found"},
        {"exc": TimeoutError()},
        {"status": 503, "text": "busy"},
        {"text": "<html>down</html>"},
    ]
    reply_duckdns(aioclient_mock, **outages[0])
    await advance(hass, freezer, timedelta(minutes=5))
    assert aioclient_mock.call_count == 1
    assert hass.states.get(PROBLEM).state == STATE_ON
    assert hass.states.get(PROBLEM).attributes["failures"] == 1
    assert hass.states.get(IPV4).state == "203.0.113.7"

    for waited, outage in zip((1, 5, 15, 30), outages[1:], strict=True):
        reply_duckdns(aioclient_mock, **outage)
        await advance(hass, freezer, timedelta(minutes=waited - 0.5))
        assert aioclient_mock.call_count == 0, f"retried before {waited} minutes"
        await advance(hass, freezer, timedelta(minutes=0.5))
        assert aioclient_mock.call_count == 1, f"no retry after {waited} minutes"

    assert hass.states.get(PROBLEM).attributes["failures"] == 5
    assert hass.states.get(IPV4).state == "203.0.113.7"
    ours = [r for r in caplog.records if r.name.startswith("custom_components")]
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) == 1

    reply_duckdns(aioclient_mock)
    await advance(hass, freezer, timedelta(minutes=30))
    assert hass.states.get(PROBLEM).state == STATE_OFF
    infos = [
        r
        for r in caplog.records
        if r.levelno == logging.INFO and "work again" in r.message
    ]
    assert len(infos) == 1
    assert TOKEN not in caplog.text

    reply_duckdns(aioclient_mock)
    await advance(hass, freezer, timedelta(minutes=4.5))
    assert aioclient_mock.call_count == 0
    await advance(hass, freezer, timedelta(minutes=0.5))
    assert aioclient_mock.call_count == 1


@pytest.mark.usefixtures("init_integration")
async def test_ko_starts_reauth_and_stops_polling(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
) -> None:
    """KO means a wrong token: ask the user, don't keep hammering DuckDNS."""
    reply_duckdns(aioclient_mock, text="KO")
    await advance(hass, freezer, timedelta(minutes=5))
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    for _ in range(3):
        await advance(hass, freezer, timedelta(minutes=30))
    assert aioclient_mock.call_count == 1


async def test_first_update_failure_retries_setup(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """With nothing known yet, an outage retries the whole setup."""
    reply_duckdns(aioclient_mock, text="<html>down</html>")
    entry = mock_entry()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY


@pytest.mark.usefixtures("init_integration")
async def test_options_apply_without_restart(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    freezer: FrozenDateTimeFactory,
    config_entry: MockConfigEntry,
) -> None:
    """A new interval and IPv6 mode take effect at once through a reload."""
    result = await hass.config_entries.options.async_init(config_entry.entry_id)
    assert result["type"] == "menu"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "dns"}
    )
    assert result["step_id"] == "dns"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_UPDATE_INTERVAL: 2,
            CONF_IPV6_MODE: "fixed",
            CONF_IPV6_ADDRESS: "fd00::1",
        },
    )
    assert result["errors"] == {CONF_IPV6_ADDRESS: "invalid_ipv6"}
    # An emptied or odd interval is a translated error, not "Value 0.0 is too small".
    for interval in (0, 61, 2.5):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            {CONF_UPDATE_INTERVAL: interval, CONF_IPV6_MODE: "off"},
        )
        assert result["errors"] == {CONF_UPDATE_INTERVAL: "invalid_update_interval"}
        assert suggested(result["data_schema"].schema)[CONF_UPDATE_INTERVAL] == interval
    reply_duckdns(aioclient_mock, duckdns_reply("203.0.113.7", "2a01:4f8::5"))
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_UPDATE_INTERVAL: 2,
            CONF_IPV6_MODE: "fixed",
            CONF_IPV6_ADDRESS: " 2a01:4f8::5 ",
        },
    )
    assert result["type"] == "create_entry"
    await hass.async_block_till_done()
    assert config_entry.options == {
        CONF_UPDATE_INTERVAL: 2,
        CONF_IPV6_MODE: "fixed",
        CONF_IPV6_ADDRESS: "2a01:4f8::5",
    }
    assert config_entry.state is ConfigEntryState.LOADED
    assert _queries(aioclient_mock)[-1]["ipv6"] == "2a01:4f8::5"
    reply_duckdns(aioclient_mock)
    await advance(hass, freezer, timedelta(minutes=2))
    assert aioclient_mock.call_count == 2

    result = await hass.config_entries.options.async_init(config_entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "dns"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_UPDATE_INTERVAL: 5, CONF_IPV6_MODE: "off"}
    )
    await hass.async_block_till_done()
    assert config_entry.options == {CONF_UPDATE_INTERVAL: 5, CONF_IPV6_MODE: "off"}


@pytest.mark.usefixtures("init_integration")
async def test_action_errors(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    config_entry: MockConfigEntry,
) -> None:
    """Unknown or unloaded entries and DuckDNS failures give translated errors."""
    with pytest.raises(ServiceValidationError) as err:
        await update_dns(hass, "nope")
    assert err.value.translation_key == "entry_not_found"

    reply_duckdns(aioclient_mock, status=500)
    with pytest.raises(HomeAssistantError) as err2:
        await update_dns(hass, config_entry.entry_id)
    assert err2.value.translation_key == "dns_update_failed"

    reply_duckdns(aioclient_mock, text="KO")
    with pytest.raises(HomeAssistantError) as err3:
        await update_dns(hass, config_entry.entry_id)
    assert err3.value.translation_key == "invalid_auth"
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]

    reply_duckdns(aioclient_mock)
    await hass.config_entries.async_unload(config_entry.entry_id)
    with pytest.raises(ServiceValidationError) as err4:
        await update_dns(hass, config_entry.entry_id)
    assert err4.value.translation_key == "entry_not_loaded"
    other = MockConfigEntry(domain="sun")
    other.add_to_hass(hass)
    with pytest.raises(ServiceValidationError):
        await update_dns(hass, other.entry_id)


async def test_duplicate_core_updater_issue(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Core's duckdns updating one of our names raises a warning that clears."""
    reply_duckdns(aioclient_mock)
    core = MockConfigEntry(
        domain="duckdns", data={"domain": "MyHome", "access_token": TOKEN}
    )
    core.add_to_hass(hass)
    MockConfigEntry(domain="duckdns", data={"domain": "other"}).add_to_hass(hass)
    MockConfigEntry(domain="duckdns", data={"domain": "not valid!"}).add_to_hass(hass)
    entry = mock_entry()
    await setup_integration(hass, entry)
    issue = issue_registry.async_get_issue(
        DOMAIN, f"duplicate_duckdns_updater_{entry.entry_id}"
    )
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders == {"names": "myhome.duckdns.org"}

    await hass.config_entries.async_remove(core.entry_id)
    await advance(hass, freezer, timedelta(minutes=5))
    assert (
        issue_registry.async_get_issue(
            DOMAIN, f"duplicate_duckdns_updater_{entry.entry_id}"
        )
        is None
    )

    core2 = MockConfigEntry(domain="duckdns", data={"domain": "myhome.duckdns.org"})
    core2.add_to_hass(hass)
    await advance(hass, freezer, timedelta(minutes=5))
    assert issue_registry.async_get_issue(
        DOMAIN, f"duplicate_duckdns_updater_{entry.entry_id}"
    )
    await hass.config_entries.async_remove(entry.entry_id)
    assert (
        issue_registry.async_get_issue(
            DOMAIN, f"duplicate_duckdns_updater_{entry.entry_id}"
        )
        is None
    )


@pytest.mark.usefixtures("init_integration")
async def test_diagnostics_redact_token(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    config_entry: MockConfigEntry,
) -> None:
    """Diagnostics carry the state but never the token."""
    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, config_entry
    )
    assert TOKEN not in str(diagnostics)
    assert diagnostics["entry"]["data"][CONF_TOKEN] == "**REDACTED**"
    assert diagnostics["dns"]["state"]["ipv4"] == "203.0.113.7"


@pytest.mark.usefixtures("init_integration")
async def test_unknown_state_before_first_value(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """IPv6 stays unknown while IPv6 updating is off."""
    registry = er.async_get(hass)
    registry.async_update_entity(IPV6, disabled_by=None)
    await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(IPV6).state == STATE_UNKNOWN
    assert hass.states.get(LAST).state != STATE_UNKNOWN
