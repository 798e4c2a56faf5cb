"""A Home Assistant restart inside one test: a new instance on the same storage.

The test instance's registries are never written to storage; the issue
registry is carried over the way Home Assistant saves and loads it (only
persistent issues keep their content). Everything in a `Store` is in the
``hass_storage`` dict both instances read and write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from homeassistant import loader
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.secure_remote_access.const import DOMAIN


async def _stop_entries(hass: HomeAssistant) -> None:
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@asynccontextmanager
async def restarted(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> AsyncIterator[HomeAssistant]:
    """Stop ``hass``'s entries, save its issues, start a new instance (stopped after).

    The entries are not set up again: add them with `same_entry`.
    """
    await _stop_entries(hass)
    hass_storage[ir.STORAGE_KEY] = {
        "version": ir.STORAGE_VERSION_MAJOR,
        "minor_version": ir.STORAGE_VERSION_MINOR,
        "key": ir.STORAGE_KEY,
        "data": ir.async_get(hass)._data_to_save(),
    }
    async with async_test_home_assistant(config_dir=hass.config.config_dir) as new:
        new.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # find this repository's
        await ir.async_get(new).async_load()
        try:
            yield new
        finally:
            await _stop_entries(new)
            await new.async_stop(force=True)


def same_entry(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """``entry`` as the restarted ``hass`` loads it from its configuration."""
    again = MockConfigEntry(
        domain=entry.domain,
        entry_id=entry.entry_id,
        title=entry.title,
        unique_id=entry.unique_id,
        data=dict(entry.data),
        options=dict(entry.options),
    )
    again.add_to_hass(hass)
    return again
