"""One truth for the trial: whoever keeps or undoes the change, the outcome is the same.

Through Home Assistant's real http component, its store and its WebSocket
commands (core's "Confirm new HTTP server configuration" dialog sends
``http/config/promote``; its Revert and the Network page send
``http/config/configure``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.http.config import AUTO_REVERT_DELAY, ActiveConfigType
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.issues import (
    https_reverted_issue_id,
    https_trial_issue_id,
)
from custom_components.secure_remote_access.served import served_files
from tests.common import UPDATE_URL, managed_options, mock_entry
from tests.fakes import certs
from tests.fakes.sandbox import http_storage

from .conftest import NAME, Setup, free_port, serial_of, serve

PROMOTE = {"type": "http/config/promote"}


def settings_of(config: dict[str, Any]) -> dict[str, Any]:
    """What the Network page sends back: a slot without its metadata."""
    return {
        k: v
        for k, v in config.items()
        if k not in ("created_at", "error", "error_message")
    }


async def test_kept_in_core_dialog_is_kept_for_us_too(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Confirm in core's dialog: our issue goes, the ticked URL is set, core's issue goes."""
    https = f"https://{NAME}:{plain.port}"
    await serve(plain)
    await plain.restart()
    assert plain.trial_issue() is not None
    assert plain.core_ssl_issue() is not None  # SSL on, no URL yet

    await plain.promote_in_core_dialog()

    assert plain.trial_issue() is None
    assert hass.config.external_url == https
    assert plain.core_ssl_issue() is None
    assert plain.store.stable["ssl_certificate"] == str(plain.cert)
    # Nothing left to keep: the fix flow of a stale page says so and changes nothing.
    assert (await plain.ws(PROMOTE))["error"]["code"] == "not_allowed"

    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.STABLE
    assert await plain.presented() == serial_of(plain.pair)
    assert plain.trial_issue() is None
    assert plain.core_ssl_issue() is None
    assert len(plain.restarts) == 1
    await hass.http.stop()


async def test_kept_while_home_assistant_was_down_is_found_at_start(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Promoted, then restarted before the follower looked: the next start applies it."""
    await serve(plain)
    await plain.restart()
    await plain.store.async_promote_pending()  # another tool, no tick afterwards
    await plain.restart()
    assert plain.trial_issue() is None
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    await hass.http.stop()


async def test_revert_in_core_dialog_drops_our_change(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Revert in core's dialog (configure with nothing): our issue goes, no URL changes."""
    await serve(plain)
    await plain.restart()
    answer = await plain.ws({"type": "http/config/configure", "config": None})
    assert answer["success"], answer
    assert answer["result"] == {"restart": True}
    await plain.tick()
    assert plain.trial_issue() is None
    await plain.restart()
    assert served_files(hass) is None
    assert plain.trial_issue() is None
    assert plain.issue(https_reverted_issue_id(plain.entry.entry_id)) is None
    assert hass.config.external_url is None
    # Serving can be asked for again at once.
    form = await plain.options_step("serve_https")
    assert form["type"] is FlowResultType.FORM
    await hass.http.stop()


async def test_network_page_saves_the_reverted_change_again(
    hass: HomeAssistant, plain: Setup, freezer: FrozenDateTimeFactory
) -> None:
    """Not kept in time; "Review the change" and Save on the Network page; then kept.

    The page writes a pending config of its own (another created_at) with the
    same settings: it is still our change, and keeping it applies our URL.
    """
    await serve(plain)
    await plain.restart()
    freezer.tick(AUTO_REVERT_DELAY + timedelta(seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    await plain.restart()
    assert plain.issue(https_reverted_issue_id(plain.entry.entry_id)) is not None
    reverted = plain.store.pending
    assert reverted is not None and reverted["error"] == "not_promoted"

    answer = await plain.ws(
        {"type": "http/config/configure", "config": settings_of(dict(reverted))}
    )
    assert answer["result"] == {"restart": True}, answer
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.PENDING
    assert plain.issue(https_reverted_issue_id(plain.entry.entry_id)) is None
    issue = plain.trial_issue()
    assert issue is not None and issue.is_fixable

    await plain.promote_in_core_dialog()
    assert plain.trial_issue() is None
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    await hass.http.stop()


async def test_restarted_twice_before_anyone_confirms(
    hass: HomeAssistant, plain: Setup
) -> None:
    """A second restart tries the same change again: one issue, still keepable."""
    await serve(plain)
    await plain.restart()
    first = plain.trial_issue()
    await plain.restart()
    again = plain.trial_issue()
    assert first is not None and again is not None
    assert again.data == first.data
    assert again.is_fixable
    result = await plain.fix(again.issue_id)
    assert result["type"] == "create_entry", result
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    await hass.http.stop()


async def test_duckdns_down_at_the_restart(
    hass: HomeAssistant, plain: Setup, aioclient_mock: AiohttpClientMocker
) -> None:
    """The entry waits for DuckDNS; "Keep serving HTTPS?" is asked all the same."""
    await serve(plain)
    aioclient_mock.clear_requests()
    aioclient_mock.get(UPDATE_URL, exc=TimeoutError())
    await plain.restart()
    assert plain.entry.state is ConfigEntryState.SETUP_RETRY
    issue = plain.trial_issue()
    assert issue is not None
    assert issue.translation_key == "https_trial"
    result = await plain.fix(issue.issue_id)
    assert result["type"] == "create_entry", result
    assert plain.store.pending is None
    assert plain.store.stable["ssl_certificate"] == str(plain.cert)
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    await hass.http.stop()


async def test_renewed_during_the_trial(hass: HomeAssistant, plain: Setup) -> None:
    """A renewal while the trial runs is served at once and kept with it."""
    await serve(plain)
    await plain.restart()
    renewed = await plain.renew()
    assert await plain.presented() == renewed["serial"]
    await plain.promote_in_core_dialog()
    assert plain.trial_issue() is None
    await plain.restart()
    assert await plain.presented() == renewed["serial"]
    assert plain.trial_issue() is None
    await hass.http.stop()


async def test_our_own_trial_in_the_menu(hass: HomeAssistant, plain: Setup) -> None:
    """While our change waits, the menu points to it instead of offering to stop."""
    await serve(plain)
    await plain.restart()
    menu = await hass.config_entries.options.async_init(plain.entry.entry_id)
    assert "https_waiting" in menu["menu_options"]
    assert "stop_https" not in menu["menu_options"]
    result = await hass.config_entries.options.async_configure(
        menu["flow_id"], {"next_step_id": "https_waiting"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_trial_waiting"
    assert result["description_placeholders"]["deadline"] != "-"
    # The stop step itself (from an old page) refuses with the same pointer.
    result = await plain.options_step("https_waiting")
    assert result["reason"] == "https_trial_waiting"
    await plain.promote_in_core_dialog()
    menu = await hass.config_entries.options.async_init(plain.entry.entry_id)
    assert "stop_https" in menu["menu_options"]
    await hass.http.stop()


async def test_removal_during_the_trial(hass: HomeAssistant, plain: Setup) -> None:
    """Deleting the entry mid-trial: our issues go, a kept change applies nothing of ours."""
    await serve(plain)
    await plain.restart()
    assert plain.trial_issue() is not None
    assert await hass.config_entries.async_remove(plain.entry.entry_id)
    await hass.async_block_till_done()
    assert plain.trial_issue() is None
    assert plain.issue("served_not_renewed") is not None
    await plain.promote_in_core_dialog()
    assert hass.config.external_url is None
    assert plain.trial_issue() is None
    await hass.http.stop()


async def test_trial_checked_from_the_integrations_own_start_up(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    aioclient_mock: AiohttpClientMocker,
    tmp_path: Path,
    socket_enabled: None,
) -> None:
    """Home Assistant starts on our pending config while DuckDNS is down.

    No entry loads, but the integration itself starts, finds the trial in
    the store and asks whether to keep it.
    """
    pair = certs.issue([NAME])
    cert, key = pair.write(tmp_path / "ssl")
    hass.config.allowlist_external_dirs = {str(tmp_path / "ssl")}
    port = free_port()
    storage = http_storage(port)
    stable: dict[str, Any] = storage["data"]["stable"]  # type: ignore[index]
    storage["data"]["pending"] = {  # type: ignore[index]
        **stable,
        "ssl_certificate": str(cert),
        "ssl_key": str(key),
        "created_at": "2026-12-01T10:00:00+00:00",
    }
    hass_storage["http"] = storage
    assert await async_setup_component(hass, "http", {})
    await hass.http.start()
    aioclient_mock.get(UPDATE_URL, exc=TimeoutError())
    entry = mock_entry()
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options=managed_options(cert, key))
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, https_trial_issue_id(entry.entry_id)
    )
    assert issue is not None
    assert issue.is_fixable
    assert issue.data == {
        "entry_id": entry.entry_id,
        "created_at": "2026-12-01T10:00:00+00:00",
    }
    await hass.http.stop()


async def test_our_issue_submitted_after_core_dialog_kept_it(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Kept in core's dialog, then Submit on a Repairs page opened before: same result."""
    await serve(plain)
    await plain.restart()
    issue = plain.trial_issue()
    assert issue is not None
    resp = await plain.client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": issue.issue_id}
    )
    flow = await resp.json()
    assert (await plain.ws(PROMOTE))["success"]  # no tick: the follower did not look
    result = await plain.fix_step(flow, {})
    assert result["type"] == "abort"
    assert result["reason"] == "https_nothing_to_promote"
    assert plain.trial_issue() is None
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    assert plain.core_ssl_issue() is None
    await hass.http.stop()
