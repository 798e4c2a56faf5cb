"""Tests of entry setup and unload."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.const import DOMAIN

from .common import mock_duckdns, mock_entry


async def test_setup_and_unload(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """An entry sets up with a working DuckDNS account and unloads cleanly."""
    mock_duckdns(aioclient_mock)
    entry = mock_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.dns.domains == ["myhome.duckdns.org"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED


@pytest.mark.parametrize(
    "reply", [{"text": "<html>down</html>"}, {"status": 503}, {"exc": TimeoutError()}]
)
async def test_setup_retries_when_duckdns_is_down(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker, reply: dict[str, object]
) -> None:
    """An outage at startup retries later instead of failing for good."""
    mock_duckdns(aioclient_mock, **reply)  # type: ignore[arg-type]
    entry = mock_entry()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_setup_ko_starts_reauth(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """KO at startup means the token is wrong: the user is asked for a new one."""
    mock_duckdns(aioclient_mock, text="KO")
    entry = mock_entry()
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
