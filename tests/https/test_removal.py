"""Deleting the last entry leaves in .storage only what the README's Removal names."""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.secure_remote_access.const import DOMAIN
from tests.common import renew

from .conftest import Setup, serve

TRIAL_STORE = f"{DOMAIN}.https_trial"
README = Path(__file__).parents[2] / "README.md"


def _ours(hass_storage: dict[str, Any]) -> set[str]:
    """The integration's files in .storage (Home Assistant's store, in memory)."""
    return {key for key in hass_storage if key.startswith(f"{DOMAIN}.")}


def _named_in_readme_removal() -> set[str]:
    """The .storage files the README's Removal section says stay."""
    text = README.read_text(encoding="utf-8")
    removal = text.split("\n## Removal\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(rf"\.storage/({re.escape(DOMAIN)}\.\w+)", removal))


async def test_last_entry_removed_leaves_only_what_the_readme_names(
    hass: HomeAssistant, plain: Setup, hass_storage: dict[str, Any]
) -> None:
    """A trial nobody pends any more (undone under Network) goes with the entry."""
    await serve(plain)
    await plain.hass.async_block_till_done()
    assert TRIAL_STORE in _ours(hass_storage)
    # The user undoes the change before restarting: nothing is pending.
    await plain.store.async_set_pending(None)
    assert (await renew(hass, plain.entry, force=True))["renewed"]
    before = _ours(hass_storage)
    assert TRIAL_STORE in before
    assert any(plain.entry.entry_id in key for key in before)  # the entry's own

    assert await hass.config_entries.async_remove(plain.entry.entry_id)
    await hass.async_block_till_done()
    left = _ours(hass_storage)
    assert TRIAL_STORE not in left
    assert (
        left
        <= _named_in_readme_removal()
        == {
            f"{DOMAIN}.acme_accounts",
            TRIAL_STORE,  # named as removed with the last entry
        }
    )
    await hass.http.stop()


async def test_last_entry_removed_during_a_trial_forgets_it(
    hass: HomeAssistant, plain: Setup, hass_storage: dict[str, Any]
) -> None:
    """Nothing follows the trial any more: its record goes (test_confirm_paths:
    keeping it then sets nothing)."""
    await serve(plain)
    await plain.restart()
    assert plain.store.pending is not None

    assert await hass.config_entries.async_remove(plain.entry.entry_id)
    await hass.async_block_till_done()
    assert TRIAL_STORE not in _ours(hass_storage)
    await plain.promote_in_core_dialog()
    assert TRIAL_STORE not in _ours(hass_storage)
    await hass.http.stop()
