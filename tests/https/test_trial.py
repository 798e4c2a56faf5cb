"""Serving HTTPS through Home Assistant's real http config store: write, try, keep or revert."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.http.config import AUTO_REVERT_DELAY, ActiveConfigType
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.secure_remote_access.https import (
    HttpsAction,
    HttpsRefusedError,
    async_plan,
)
from custom_components.secure_remote_access.issues import (
    https_reverted_issue_id,
    https_trial_issue_id,
)
from custom_components.secure_remote_access.served import served_files
from tests.fakes import certs

from .conftest import HTTPS, NAME, Setup, serial_of, serve, their_pending


async def test_serve_writes_the_pending_config_and_restarts(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The explaining screen, then exactly the two paths added, and a restart."""
    stable_before = dict(plain.store.stable)
    form = await plain.options_step("serve_https")
    assert form["type"] is FlowResultType.FORM
    placeholders = form["description_placeholders"]
    assert placeholders["certificate"] == str(plain.cert)
    assert placeholders["key"] == str(plain.key)
    assert placeholders["port"] == str(plain.port)
    assert placeholders["https_url"] == f"https://{NAME}:{plain.port}"
    assert placeholders["local_url"].startswith("http://")
    assert "set_external_url" in form["data_schema"].schema
    assert not plain.restarts

    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"set_external_url": True}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_restarting"

    pending = plain.store.pending
    assert pending is not None
    expected = {
        **{k: v for k, v in stable_before.items() if k != "created_at"},
        "ssl_certificate": str(plain.cert),
        "ssl_key": str(plain.key),
    }
    assert {k: v for k, v in pending.items() if k != "created_at"} == expected
    assert plain.store.stable == stable_before
    assert len(plain.restarts) == 1
    # The external URL changes only when the change is kept.
    assert hass.config.external_url is None
    # Until the restart, the running server is unchanged.
    assert served_files(hass) is None


async def test_trial_confirmed_then_kept_through_the_fix_flow(
    hass: HomeAssistant, plain: Setup
) -> None:
    """After the restart the managed serial is presented; Keep promotes it."""
    await serve(plain)  # the external URL box is ticked by default
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.PENDING
    assert await plain.presented() == serial_of(plain.pair)
    issue = plain.issue(https_trial_issue_id(plain.entry.entry_id))
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_key == "https_trial"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["https_url"] == f"https://{NAME}:{plain.port}"

    result = await plain.fix(https_trial_issue_id(plain.entry.entry_id))
    assert result["type"] == "create_entry", result
    assert plain.store.pending is None
    assert plain.store.revert_deadline is None
    assert plain.store.stable["ssl_certificate"] == str(plain.cert)
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is None
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"

    # Another restart: still HTTPS, from the stable slot, nothing to confirm.
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.STABLE
    assert await plain.presented() == serial_of(plain.pair)
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is None
    assert len(plain.restarts) == 1

    # A renewal is served at once, without another restart.
    renewed = await plain.renew()
    assert renewed["serial"] != serial_of(plain.pair)
    assert await plain.presented() == renewed["serial"]
    assert len(plain.restarts) == 1
    await hass.http.stop()


async def test_nobody_confirms_and_home_assistant_goes_back(
    hass: HomeAssistant, plain: Setup, freezer: FrozenDateTimeFactory
) -> None:
    """Past the revert delay the store marks it not_promoted and restarts.

    The external URL (the box is ticked) stays as it was: nothing but the
    two paths ever changed.
    """
    await serve(plain)
    await plain.restart()
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is not None
    freezer.tick(AUTO_REVERT_DELAY + timedelta(seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(plain.restarts) == 2
    assert plain.store.pending is not None
    assert plain.store.pending["error"] == "not_promoted"
    # Too late to keep it: the fix flow refuses and changes nothing.
    result = await plain.fix(https_trial_issue_id(plain.entry.entry_id))
    assert result["type"] == "abort"
    assert result["reason"] == "https_nothing_to_promote"
    assert plain.store.pending["error"] == "not_promoted"
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is None
    # Until the restart the trial's server still runs: no new change yet.
    with pytest.raises(HttpsRefusedError, match="https_pending_exists"):
        await async_plan(hass, plain.entry, HttpsAction.SERVE)

    await plain.restart()
    assert served_files(hass) is None
    assert await plain.presented() is None
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is None
    reverted = plain.issue(https_reverted_issue_id(plain.entry.entry_id))
    assert reverted is not None
    assert reverted.translation_key == "https_reverted"
    assert hass.config.external_url is None
    # Dismissing it forgets the failed config; serving can be tried again.
    result = await plain.fix(https_reverted_issue_id(plain.entry.entry_id))
    assert result["type"] == "create_entry", result
    assert plain.store.pending is None
    await serve(plain)
    assert plain.store.pending is not None
    await hass.http.stop()


async def test_unconfirmed_serial_is_not_offered_for_keeping(
    hass: HomeAssistant, plain: Setup
) -> None:
    """When the server does not present the managed serial, nothing to keep."""
    await serve(plain)
    with patch(f"{HTTPS}.async_presented_serial", return_value="ffff"):
        await plain.restart()
    issue = plain.issue(https_trial_issue_id(plain.entry.entry_id))
    assert issue is not None
    assert issue.translation_key == "https_trial_unconfirmed"
    assert not issue.is_fixable
    await hass.http.stop()


async def test_config_that_cannot_be_applied_is_explained(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Files gone before the restart: Home Assistant stays on HTTP, we say why."""
    await serve(plain)
    plain.cert.unlink()
    await plain.restart()
    assert served_files(hass) is None
    reverted = plain.issue(https_reverted_issue_id(plain.entry.entry_id))
    assert reverted is not None
    assert reverted.translation_key == "https_reverted_other"
    assert reverted.translation_placeholders is not None
    assert str(plain.cert) in reverted.translation_placeholders["error"]
    await hass.http.stop()


async def test_stop_serving(hass: HomeAssistant, serving: Setup) -> None:
    """The reverse: the two paths removed, restart, confirm plain HTTP, keep it."""
    setup = serving
    assert await setup.presented() == serial_of(setup.pair)
    stable_before = dict(setup.store.stable)
    form = await setup.options_step("stop_https")
    assert form["type"] is FlowResultType.FORM
    assert "set_external_url" not in form["data_schema"].schema
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_restarting"
    pending = setup.store.pending
    assert pending is not None
    assert {k: v for k, v in pending.items() if k != "created_at"} == {
        k: v
        for k, v in stable_before.items()
        if k not in ("created_at", "ssl_certificate", "ssl_key")
    }
    assert len(setup.restarts) == 1

    await setup.restart()
    assert served_files(hass) is None
    issue = setup.issue(https_trial_issue_id(setup.entry.entry_id))
    assert issue is not None
    assert issue.translation_key == "https_trial_stop"
    result = await setup.fix(https_trial_issue_id(setup.entry.entry_id))
    assert result["type"] == "create_entry"
    assert "ssl_certificate" not in setup.store.stable
    result = await setup.options_step("serve_https")
    assert result["type"] is FlowResultType.FORM
    await hass.http.stop()


async def test_http_without_tls_fix_flow_serves_the_certificate(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The checklist issue's fix: why it matters, then the same explaining screen."""
    flow = await plain.http_without_tls_fix()
    assert flow["step_id"] == "serve_https", flow
    assert flow["description_placeholders"]["certificate"] == str(plain.cert)
    result = await plain.fix_step(flow, {"set_external_url": False})
    assert result["type"] == "create_entry", result
    assert plain.store.pending is not None
    assert plain.store.pending["ssl_certificate"] == str(plain.cert)
    assert hass.config.external_url is None
    assert len(plain.restarts) == 1


async def test_changes_of_others_are_not_ours_to_confirm(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Another tool's trial gets no issue of ours; its failed config is not replaced."""
    await their_pending(plain)
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.PENDING
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is None
    failed = plain.store.pending
    assert failed is not None
    failed["error"] = "not_promoted"
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.STABLE
    assert plain.issue(https_reverted_issue_id(plain.entry.entry_id)) is None
    result = await plain.options_step("serve_https")
    assert result["reason"] == "https_pending_exists"
    await hass.http.stop()


async def test_our_failed_config_can_be_replaced(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Trying again after a revert replaces our own failed pending config."""
    await serve(plain)
    first = plain.store.pending
    assert first is not None
    first["error"] = "not_promoted"
    await serve(plain)
    assert plain.store.pending is not None
    assert plain.store.pending["error"] is None
    assert len(plain.restarts) == 2


async def test_reload_before_the_restart_raises_nothing(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Written but not yet tried: there is nothing to confirm yet."""
    await serve(plain)
    assert await hass.config_entries.async_reload(plain.entry.entry_id)
    await hass.async_block_till_done()
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is None


async def test_certificate_expired_before_the_restart_is_not_confirmed(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Home Assistant serves it, but an expired certificate is nothing to keep."""
    await serve(plain)
    certs.issue([NAME], key=plain.pair.key, expired=True).write(plain.cert.parent)
    await plain.restart()
    issue = plain.issue(https_trial_issue_id(plain.entry.entry_id))
    assert issue is not None
    assert issue.translation_key == "https_trial_unconfirmed"
    await hass.http.stop()
