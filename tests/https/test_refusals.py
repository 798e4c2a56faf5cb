"""Serving HTTPS: what is refused, with which reason, and that nothing changes then."""

from __future__ import annotations

from typing import Any

from homeassistant.core import CoreState, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.secure_remote_access.https import (
    HttpsAction,
    HttpsRefusedError,
    async_plan,
)
from tests.fakes import certs

from .conftest import NAME, MakeSetup, Setup, their_pending


async def test_another_pending_config_is_never_overwritten(
    hass: HomeAssistant, plain: Setup
) -> None:
    """A change waiting from the user or another tool: refuse, touch nothing."""
    await their_pending(plain)
    waiting = dict(plain.store.pending or {})
    result = await plain.options_step("serve_https")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_pending_exists"
    assert plain.store.pending == waiting
    assert not plain.restarts


async def test_pending_config_appearing_while_the_form_is_open(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The check repeats on submit."""
    form = await plain.options_step("serve_https")
    await their_pending(plain)
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_pending_exists"
    assert plain.store.pending is not None
    assert plain.store.pending["login_attempts_threshold"] == 9
    assert not plain.restarts


async def test_not_started_yet(hass: HomeAssistant, plain: Setup) -> None:
    """While Home Assistant starts, the flow asks to try again later."""
    hass.set_state(CoreState.starting)
    result = await plain.options_step("serve_https")
    hass.set_state(CoreState.running)
    assert result["reason"] == "https_not_started"


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        (lambda: certs.issue([NAME], expired=True), "https_certificate_expired"),
        (lambda: certs.issue(["other.duckdns.org"]), "https_certificate_names"),
    ],
)
async def test_unusable_certificate_is_refused(
    hass: HomeAssistant, make_setup: MakeSetup, pair: Any, reason: str
) -> None:
    """An expired certificate or one without the names is never served."""
    setup = await make_setup(pair=pair())
    result = await setup.options_step("serve_https")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason
    assert setup.store.pending is None


async def test_missing_or_unreadable_paths_are_refused(
    hass: HomeAssistant, plain: Setup
) -> None:
    """A missing file, and files Home Assistant may not read."""
    plain.key.unlink()
    result = await plain.options_step("serve_https")
    assert result["reason"] == "https_certificate_unusable"
    hass.config.allowlist_external_dirs = set()
    result = await plain.options_step("serve_https")
    assert result["reason"] == "https_path_not_allowed"
    placeholders = result["description_placeholders"]
    assert placeholders["path"] == str(plain.cert)
    assert hass.config.config_dir in placeholders["allowed"]
    assert plain.store.pending is None


async def test_menu_and_plan_follow_what_is_served(
    hass: HomeAssistant, serving: Setup
) -> None:
    """Serve is offered while not served, Stop while served; odd calls refuse."""
    setup = serving
    menu = await hass.config_entries.options.async_init(setup.entry.entry_id)
    assert "serve_https" not in menu["menu_options"]
    with pytest.raises(HttpsRefusedError, match="https_already_serving"):
        await async_plan(hass, setup.entry, HttpsAction.SERVE)
    hass.config_entries.async_update_entry(setup.entry, options={})
    await hass.async_block_till_done()
    menu = await hass.config_entries.options.async_init(setup.entry.entry_id)
    assert "serve_https" not in menu["menu_options"]
    assert "stop_https" not in menu["menu_options"]
    with pytest.raises(HttpsRefusedError, match="https_no_certificate"):
        await async_plan(hass, setup.entry, HttpsAction.STOP)
    await hass.http.stop()


async def test_stop_refused_while_not_serving(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Nothing to stop over plain HTTP."""
    with pytest.raises(HttpsRefusedError, match="https_not_serving"):
        await async_plan(hass, plain.entry, HttpsAction.STOP)
