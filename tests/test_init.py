"""Tests of entry setup and unload."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access.const import DOMAIN


async def test_setup_and_unload(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """An entry sets up with a working DuckDNS account and unloads cleanly."""
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.dns.domains == ["myhome.duckdns.org"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


@pytest.mark.parametrize(
    ("duckdns_response", "state"),
    [
        ({"text": "<html>down</html>"}, ConfigEntryState.SETUP_RETRY),
        ({"status": 503}, ConfigEntryState.SETUP_RETRY),
        ({"exc": TimeoutError()}, ConfigEntryState.SETUP_RETRY),
        ({"text": "KO"}, ConfigEntryState.SETUP_ERROR),
    ],
)
async def test_setup_fails(
    hass: HomeAssistant,
    mock_duckdns: Any,
    config_entry: MockConfigEntry,
    duckdns_response: dict[str, object],
    state: ConfigEntryState,
) -> None:
    """An outage at startup retries later; KO (a wrong token) asks for a new one."""
    config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert config_entry.state is state
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    reauth = [SOURCE_REAUTH] if state is ConfigEntryState.SETUP_ERROR else []
    assert [flow["context"]["source"] for flow in flows] == reauth
