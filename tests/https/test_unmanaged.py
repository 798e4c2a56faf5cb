"""Deleting the entry or turning its certificate off while Home Assistant serves it."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryDisabler
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from tests.common import managed_options

from .conftest import NAME, Setup, serve

ISSUE = "served_not_renewed"


async def test_certificate_off_while_served(
    hass: HomeAssistant, serving: Setup
) -> None:
    """A lasting warning with the ways out; it goes once the entry renews again."""
    result = await serving.options_step("certificate_off")
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    issue = serving.issue(ISSUE)
    assert issue is not None
    assert issue.is_persistent
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["certificate"] == str(serving.cert)
    assert issue.translation_placeholders["date"].endswith("UTC")

    # Submitting while nothing changed: it still holds, so it stays.
    result = await serving.fix(ISSUE)
    assert result["type"] == "abort"
    assert result["reason"] == "still_served"
    assert serving.issue(ISSUE) is not None

    hass.config_entries.async_update_entry(
        serving.entry, options=managed_options(serving.cert, serving.key)
    )
    await hass.config_entries.async_reload(serving.entry.entry_id)
    await hass.async_block_till_done()
    assert serving.issue(ISSUE) is None
    await hass.http.stop()


async def test_removal_while_served_until_stopped_on_the_network_page(
    hass: HomeAssistant, serving: Setup
) -> None:
    """Deleted while served: warned across restarts; gone once HTTPS is stopped."""
    assert await hass.config_entries.async_remove(serving.entry.entry_id)
    await hass.async_block_till_done()
    assert serving.issue(ISSUE) is not None
    await serving.restart()
    assert serving.issue(ISSUE) is not None

    dropped = ("created_at", "error", "error_message", "ssl_certificate", "ssl_key")
    plain = {k: v for k, v in serving.store.stable.items() if k not in dropped}
    answer = await serving.ws({"type": "http/config/configure", "config": plain})
    assert answer["result"] == {"restart": True}, answer
    await serving.restart()
    assert (await serving.ws({"type": "http/config/promote"}))["success"]
    result = await serving.fix(ISSUE)
    assert result["type"] == "create_entry", result
    assert serving.issue(ISSUE) is None
    await hass.http.stop()


async def test_removal_after_stopping_warns_of_nothing(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Nothing served, nothing to warn about."""
    assert await hass.config_entries.async_remove(plain.entry.entry_id)
    await hass.async_block_till_done()
    assert plain.issue(ISSUE) is None


async def test_removal_during_a_serve_trial_then_reverted(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Served while the trial runs, so warned; the start after the revert clears it."""
    await serve(plain)
    await plain.restart()
    assert await hass.config_entries.async_remove(plain.entry.entry_id)
    await hass.async_block_till_done()
    assert plain.issue(ISSUE) is not None
    assert (await plain.ws({"type": "http/config/configure", "config": None}))[
        "success"
    ]
    await plain.restart()
    assert plain.issue(ISSUE) is None
    await hass.http.stop()


async def test_certificate_off_during_the_trial_asks_nothing_more(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Nothing renews the pair any more: no "Keep serving HTTPS?" that would keep it."""
    await serve(plain)
    await plain.restart()
    assert plain.trial_issue() is not None
    result = await plain.options_step("certificate_off")
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert plain.trial_issue() is None
    assert plain.issue(ISSUE) is not None
    # Kept in core's dialog anyway: the lasting warning stays, nothing of ours applies.
    await plain.promote_in_core_dialog()
    assert plain.trial_issue() is None
    assert plain.issue(ISSUE) is not None
    assert hass.config.external_url is None
    await hass.http.stop()


async def test_removal_names_the_urls_to_set_back(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The way out through the Network page names the URLs the product set.

    With the entry gone, nothing of ours restores them when the user stops
    serving there; the app would keep opening a dead https:// address.
    """
    local = f"http://homeassistant.local:{plain.port}"
    await hass.config.async_update(internal_url=local)
    await serve(plain)
    await plain.restart()
    await plain.promote_in_core_dialog()
    https = f"https://{NAME}:{plain.port}"
    assert hass.config.external_url == https
    assert await hass.config_entries.async_remove(plain.entry.entry_id)
    await hass.async_block_till_done()
    issue = plain.issue(ISSUE)
    assert issue is not None
    assert issue.translation_placeholders is not None
    urls = issue.translation_placeholders["urls"]
    assert f"{https} → -" in urls
    assert f"{https} → {local}" in urls
    await hass.http.stop()


async def test_nothing_to_set_back_without_urls_of_ours(
    hass: HomeAssistant, serving: Setup
) -> None:
    """Served from the start (set by hand): no URL of ours to name."""
    assert await hass.config_entries.async_remove(serving.entry.entry_id)
    await hass.async_block_till_done()
    issue = serving.issue(ISSUE)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["urls"] == "-"
    await hass.http.stop()


async def test_disabling_the_entry_while_served_warns_until_enabled(
    hass: HomeAssistant, serving: Setup
) -> None:
    """A disabled entry renews nothing: the same lasting warning; enabling clears it."""
    assert await hass.config_entries.async_set_disabled_by(
        serving.entry.entry_id, ConfigEntryDisabler.USER
    )
    await hass.async_block_till_done()
    issue = serving.issue(ISSUE)
    assert issue is not None
    assert issue.is_persistent
    result = await serving.fix(ISSUE)
    assert result["reason"] == "still_served"

    assert await hass.config_entries.async_set_disabled_by(serving.entry.entry_id, None)
    await hass.async_block_till_done()
    assert serving.issue(ISSUE) is None
    await hass.http.stop()
