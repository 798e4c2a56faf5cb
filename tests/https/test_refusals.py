"""Serving HTTPS: what is refused, with which reason, and that nothing changes then."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import patch

from aiohasupervisor import SupervisorConnectionError
from homeassistant.components.http.config import ActiveConfigType
from homeassistant.core import CoreState, HomeAssistant, ServiceCall
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import storage
from homeassistant.util.file import WriteError
import pytest
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.secure_remote_access.certificate import CertificateRenewalError
from custom_components.secure_remote_access.https import (
    HttpsAction,
    HttpsRefusedError,
    async_plan,
)
from custom_components.secure_remote_access.issues import https_trial_issue_id
from tests.fakes import certs
from tests.fakes.issuer import FakeCa

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
        (
            lambda: certs.issue([NAME], not_yet_valid=True),
            "https_certificate_not_yet_valid",
        ),
    ],
)
async def test_unusable_certificate_is_refused(
    hass: HomeAssistant,
    make_setup: MakeSetup,
    fake_ca: FakeCa,
    pair: Any,
    reason: str,
) -> None:
    """An expired or not yet valid certificate, or one without the names, is never served."""
    # The CA is down: the certificate without the names, ordered again right
    # after setup, stays until a renewal works.
    fake_ca.failures = [CertificateRenewalError("the CA is down")]
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


async def test_a_restart_home_assistant_would_refuse_writes_nothing(
    hass: HomeAssistant, plain: Setup
) -> None:
    """An invalid configuration.yaml: Home Assistant would not restart."""
    form = await plain.options_step("serve_https")
    Path(hass.config.path("configuration.yaml")).write_text(
        "homeassistant:\n  unit_system: nonsense\n", encoding="utf-8"
    )
    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"set_external_url": True}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_restart_blocked"
    assert "unit_system" in result["description_placeholders"]["error"]
    assert plain.store.pending is None
    assert hass.config.external_url is None
    assert not plain.restarts


async def test_a_restart_the_supervisor_refuses_leaves_nothing_waiting(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The Supervisor refuses the restart (another job of Core runs): said at once.

    Otherwise the flow says "restarting", nothing restarts, and the change
    waits for whichever restart comes next, days later.
    """
    form = await plain.options_step("serve_https")

    async def refuse(call: ServiceCall) -> None:
        raise HomeAssistantError(
            "'HomeAssistantCore.restart' blocked from execution, another job of"
            " home_assistant_core is running"
        )

    hass.services.async_register("homeassistant", "restart", refuse)
    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"set_external_url": True}
    )
    assert result["reason"] == "https_restarting"  # answered before the restart
    await hass.async_block_till_done(wait_background_tasks=True)
    issue = plain.issue("https_restart_refused")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert "another job" in issue.translation_placeholders["error"]
    assert plain.store.pending is None
    assert plain.trial_issue() is None
    menu = await hass.config_entries.options.async_init(plain.entry.entry_id)
    assert "serve_https" in menu["menu_options"]
    hass.config_entries.options.async_abort(menu["flow_id"])
    # Once the job is done, trying again works and the refusal is history.
    async_mock_service(hass, "homeassistant", "restart")
    result = await plain.options_step("serve_https")
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["reason"] == "https_restarting"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert plain.issue("https_restart_refused") is None
    assert plain.store.pending is not None
    await hass.http.stop()


async def test_a_restart_under_way_keeps_the_new_settings(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The Supervisor stops Core before it answers: the lost answer is no refusal."""
    form = await plain.options_step("serve_https")

    async def stop_core(call: ServiceCall) -> None:
        hass.set_state(CoreState.stopping)
        raise SupervisorConnectionError("Server disconnected")

    hass.services.async_register("homeassistant", "restart", stop_core)
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_restarting"
    await hass.async_block_till_done(wait_background_tasks=True)
    hass.set_state(CoreState.running)
    assert plain.store.pending is not None
    assert plain.issue("https_restart_refused") is None
    await hass.http.stop()


async def test_settings_the_disk_refuses_are_not_restarted_for(
    hass: HomeAssistant,
    plain: Setup,
    hass_storage: dict[str, Any],
) -> None:
    """A full or read-only disk: said at once, no restart into the old settings.

    Home Assistant's store only logs a failed write; the restart would start
    on the old ``.storage/http`` and nobody would say why nothing changed.
    """
    form = await plain.options_step("serve_https")
    write = storage.Store._async_write_data

    async def disk_full(store: storage.Store[Any], data: dict[str, Any]) -> None:
        if store.key == "http":
            raise WriteError("[Errno 28] No space left on device")
        await write(store, data)

    with patch.object(storage.Store, "_async_write_data", disk_full):
        result = await hass.config_entries.options.async_configure(
            form["flow_id"], {"set_external_url": True}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_write_failed"
    assert not plain.restarts
    assert plain.store.pending is None
    assert hass_storage["http"]["data"]["pending"] is None
    assert plain.trial_issue() is None
    assert hass.config.external_url is None

    form = await plain.options_step("serve_https")
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_restarting"
    assert hass_storage["http"]["data"]["pending"]["ssl_certificate"] == str(plain.cert)
    await hass.http.stop()


async def test_a_change_saved_while_ours_is_written_is_left_alone(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The Network page saves while ours is being checked on disk: theirs stays."""
    form = await plain.options_step("serve_https")
    load = storage.Store._async_load
    theirs = dict(plain.store.stable) | {"login_attempts_threshold": 9}

    async def network_page_saves(store: storage.Store[Any]) -> Any:
        pending = plain.store.pending
        if store.key == "http" and pending and pending["login_attempts_threshold"] != 9:
            await plain.store.async_set_pending(theirs)  # type: ignore[arg-type]
        return await load(store)

    with patch.object(storage.Store, "_async_load", network_page_saves):
        result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_pending_exists"
    assert plain.store.pending is not None
    assert plain.store.pending["login_attempts_threshold"] == 9
    assert not plain.restarts
    await hass.http.stop()


async def _their_pending_with_our_files(setup: Setup) -> None:
    """The user or another tool stages our two paths and one more change."""
    theirs = dict(setup.store.stable) | {
        "ssl_certificate": str(setup.cert),
        "ssl_key": str(setup.key),
        "login_attempts_threshold": 9,
    }
    await setup.store.async_set_pending(theirs)  # type: ignore[arg-type]


async def test_a_failed_change_of_another_tool_with_our_files_is_kept(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Only our own failed change may be replaced, even when it uses our files."""
    await _their_pending_with_our_files(plain)
    assert plain.store.pending is not None
    plain.store.pending["error"] = "not_promoted"
    theirs = dict(plain.store.pending)
    result = await plain.options_step("serve_https")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "https_pending_exists"
    assert plain.store.pending == theirs


async def test_a_trial_of_another_tool_with_our_files_is_not_offered_as_ours(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Keep serving HTTPS? would promote their other change too: no issue."""
    await _their_pending_with_our_files(plain)
    await plain.restart()
    assert plain.store.active_config_type is ActiveConfigType.PENDING
    assert plain.issue(https_trial_issue_id(plain.entry.entry_id)) is None
    await hass.http.stop()
