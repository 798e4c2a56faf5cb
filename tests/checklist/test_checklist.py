"""The security checklist against a real Home Assistant: issues appear and clear."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
import json
import logging
from unittest.mock import patch

from aiohasupervisor import SupervisorError
from freezegun.api import FrozenDateTimeFactory
from homeassistant import const as ha_const
from homeassistant.auth.providers import auth_provider_from_config
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.checklist.checks import CHECKS_BY_ID
from custom_components.secure_remote_access.checklist.models import KeyFile
from custom_components.secure_remote_access.checklist.snapshot import (
    async_collect_snapshot,
)
from custom_components.secure_remote_access.const import DOMAIN

from .conftest import (
    EXTERNAL_URL,
    IS_HASSIO,
    SUPERVISOR_CLIENT,
    FakeAddon,
    FakeSupervisor,
    Installation,
    add_admin,
)

SENSOR = "sensor.myhome_duckdns_org_security_findings"
SECRET = "yaml-s3cret-do-not-leak"
SSH_PASSWORD = "ssh-hunter2-do-not-leak"


async def test_safe_installation_has_no_findings(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """Every check passes on the safe installation and no issue exists."""
    result = await installation.run()
    assert result.failing_ids == []
    assert installation.issue_ids() == set()
    state = hass.states.get("sensor.myhome_duckdns_org_security_findings")
    assert state is not None
    assert state.state == "0"
    assert state.attributes["failing_checks"] == []


async def test_snapshot_reads_the_live_installation(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """The snapshot sees the real http server, users with MFA, files and URL."""
    snapshot = await async_collect_snapshot(hass)
    assert snapshot.http is not None
    assert snapshot.http.tls
    assert snapshot.http.ip_ban_enabled
    assert snapshot.http.login_attempts_threshold == 5
    assert snapshot.http.use_x_frame_options
    assert snapshot.external_url == EXTERNAL_URL
    assert [
        (u.name, u.is_admin, u.mfa_modules)
        for u in snapshot.users
        if not u.system_generated
    ] == [("Owner", True, ("totp",))]
    assert snapshot.key_files == (KeyFile(str(installation.key), 0o600),)
    assert snapshot.secrets is not None
    assert snapshot.secrets.scanned_files == 1
    assert snapshot.installation_type == "Home Assistant OS"
    assert not snapshot.supervisor
    assert snapshot.ssh_addons == ()


async def _break_http_tls(installation: Installation) -> None:
    await installation.apply_http(ssl_certificate=None, ssl_key=None)


async def _fix_http_tls(installation: Installation) -> None:
    await installation.apply_http()


async def _break_external_url(installation: Installation) -> None:
    await installation.hass.config.async_update(
        external_url="http://myhome.duckdns.org"
    )


async def _fix_external_url(installation: Installation) -> None:
    await installation.hass.config.async_update(external_url=EXTERNAL_URL)


async def _break_bans(installation: Installation) -> None:
    await installation.apply_http(login_attempts_threshold=-1)


async def _break_ban_off(installation: Installation) -> None:
    await installation.apply_http(ip_ban_enabled=False)


async def _fix_http(installation: Installation) -> None:
    await installation.apply_http()


async def _break_proxies(installation: Installation) -> None:
    await installation.apply_http(
        use_x_forwarded_for=True, trusted_proxies=["172.30.33.0/24", "0.0.0.0/0"]
    )


async def _fix_proxies(installation: Installation) -> None:
    await installation.apply_http(
        use_x_forwarded_for=True, trusted_proxies=["172.30.33.0/24"]
    )


async def _break_frames(installation: Installation) -> None:
    await installation.apply_http(use_x_frame_options=False)


async def _break_key(installation: Installation) -> None:
    installation.key.chmod(0o644)


async def _fix_key(installation: Installation) -> None:
    installation.key.chmod(0o600)


async def _break_root(installation: Installation) -> None:
    installation.system_info.update(installation_type="Home Assistant Core")


async def _fix_root(installation: Installation) -> None:
    installation.system_info.update(user="homeassistant")


async def _break_yaml(installation: Installation) -> None:
    installation.write_config(
        "homeassistant:\n  name: Home\npackages: !include_dir_named packages\n"
    )
    installation.write_config(f"mqtt:\n  password: {SECRET}\n", "packages/mqtt.yaml")


async def _fix_yaml(installation: Installation) -> None:
    installation.write_config("mqtt:\n  password: !secret mqtt\n", "packages/mqtt.yaml")


async def _break_version(installation: Installation) -> None:
    installation.hass.data["test_version"] = patch.object(
        ha_const, "__version__", "2026.5.3"
    )
    installation.hass.data["test_version"].start()


async def _fix_version(installation: Installation) -> None:
    installation.hass.data.pop("test_version").stop()


CASES = {
    "http_without_tls": (
        _break_http_tls,
        _fix_http_tls,
        {"external_url": EXTERNAL_URL},
    ),
    "external_url_not_https": (
        _break_external_url,
        _fix_external_url,
        {"external_url": "http://myhome.duckdns.org"},
    ),
    "login_ban_disabled": (
        _break_bans,
        _fix_http,
        {"ip_ban_enabled": "true", "login_attempts_threshold": "-1"},
    ),
    "trusted_proxies_too_broad": (
        _break_proxies,
        _fix_proxies,
        {"networks": "0.0.0.0/0"},
    ),
    "x_frame_options_disabled": (_break_frames, _fix_http, {}),
    "private_key_world_readable": (_break_key, _fix_key, None),
    "running_as_root": (_break_root, _fix_root, {}),
    "secrets_inline": (
        _break_yaml,
        _fix_yaml,
        {"count": "1", "files": "packages/mqtt.yaml"},
    ),
    "core_version_vulnerable": (
        _break_version,
        _fix_version,
        {
            "version": "2026.5.3",
            "advisories": "GHSA-5hxg-r395-fqxx",
            "minimum_version": "2026.6.0",
        },
    ),
}


@pytest.mark.parametrize("check_id", list(CASES))
async def test_issue_appears_and_clears(
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    check_id: str,
) -> None:
    """Breaking the installation raises exactly that issue; fixing it clears it."""
    break_it, fix_it, placeholders = CASES[check_id]
    await break_it(installation)
    result = await installation.run()
    assert result.failing_ids == [check_id]
    issue = installation.issue(check_id)
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_key == check_id
    assert issue.severity == result.findings[0].severity.value
    assert issue.learn_more_url == CHECKS_BY_ID[check_id].learn_more_url
    if placeholders is not None:
        assert issue.translation_placeholders == placeholders
    state = hass.states.get(SENSOR)
    assert state is not None
    assert state.state == "1"
    assert state.attributes["failing_checks"] == [check_id]

    await fix_it(installation)
    result = await installation.run()
    assert result.failing_ids == []
    assert installation.issue(check_id) is None
    assert hass.states.get(SENSOR).state == "0"


@pytest.mark.parametrize(
    ("break_it", "check_id", "placeholders"),
    [
        (
            _break_key,
            "private_key_world_readable",
            lambda installation: {"paths": str(installation.key), "modes": "0644"},
        ),
        (
            _break_ban_off,
            "login_ban_disabled",
            lambda _: {"ip_ban_enabled": "false", "login_attempts_threshold": "5"},
        ),
    ],
    ids=["world_readable_key", "ban_off"],
)
async def test_issue_placeholders(
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    break_it: Callable[[Installation], Awaitable[None]],
    check_id: str,
    placeholders: Callable[[Installation], dict[str, str]],
) -> None:
    """The key's path and mode are shown; IP banning off is as bad as a threshold of -1."""
    await break_it(installation)
    await installation.run()
    issue = installation.issue(check_id)
    assert issue is not None
    assert issue.translation_placeholders == placeholders(installation)


async def test_trusted_networks(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """A real trusted_networks provider: bypass and public ranges, then fixed."""
    provider = await auth_provider_from_config(
        hass,
        hass.auth._store,
        {
            "type": "trusted_networks",
            "trusted_networks": ["192.168.1.0/24", "0.0.0.0/0"],
            "allow_bypass_login": True,
        },
    )
    key = (provider.type, provider.id)
    hass.auth._providers[key] = provider
    result = await installation.run()
    assert result.failing_ids == [
        "trusted_networks_bypass_login",
        "trusted_networks_public_range",
    ]
    bypass = installation.issue("trusted_networks_bypass_login")
    public = installation.issue("trusted_networks_public_range")
    assert bypass is not None
    assert public is not None
    assert bypass.translation_placeholders == {"networks": "192.168.1.0/24, 0.0.0.0/0"}
    assert public.translation_placeholders == {"networks": "0.0.0.0/0"}
    assert public.severity == "critical"

    del hass.auth._providers[key]
    assert (await installation.run()).failing_ids == []
    assert installation.issue_ids() == set()


async def test_admin_without_mfa_follows_user_events(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
) -> None:
    """Adding an admin re-runs the checks by itself; enabling MFA clears the issue."""
    # The entry's first run just happened: the change waits for the cooldown.
    await add_admin(hass, "Zoe")
    await hass.async_block_till_done()
    assert installation.issue("admin_without_mfa") is None
    freezer.tick(timedelta(seconds=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    issue = installation.issue("admin_without_mfa")
    assert issue is not None
    assert issue.translation_placeholders == {"count": "1", "users": "Zoe"}
    assert issue.severity == "warning"

    # A second change within the cooldown runs once the cooldown is over.
    bob = await add_admin(hass, "Bob")
    await hass.async_block_till_done()
    assert (
        installation.issue("admin_without_mfa").translation_placeholders["count"] == "1"
    )
    freezer.tick(timedelta(seconds=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    issue = installation.issue("admin_without_mfa")
    assert issue.translation_placeholders == {"count": "2", "users": "Bob, Zoe"}

    # Demoting a user is a user update: it re-runs the checks too.
    await hass.auth.async_update_user(bob, group_ids=[])
    freezer.tick(timedelta(seconds=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert (
        installation.issue("admin_without_mfa").translation_placeholders["count"] == "1"
    )

    zoe = next(u for u in await hass.auth.async_get_users() if u.name == "Zoe")
    await hass.auth.async_enable_user_mfa(zoe, "totp", {})
    await installation.run()
    assert installation.issue("admin_without_mfa") is None


async def test_ssh_addons_on_supervisor(
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SSH add-ons through a fake Supervisor: passwords and root logins."""
    caplog.set_level(logging.DEBUG)
    core = FakeAddon(
        "Terminal & SSH",
        {"authorized_keys": [], "password": SSH_PASSWORD, "apks": []},
    )
    community = FakeAddon(
        "Advanced SSH & Web Terminal",
        {
            "ssh": {
                "username": "hassio",
                "password": "",
                "authorized_keys": ["ssh-ed25519 A"],
            }
        },
    )
    supervisor = FakeSupervisor({"core_ssh": core, "a0d7b954_ssh": community})
    with (
        patch(IS_HASSIO, return_value=True),
        patch(SUPERVISOR_CLIENT, return_value=supervisor),
    ):
        result = await installation.run()
        assert result.failing_ids == ["ssh_password_login", "ssh_root_login"]
        assert supervisor.addons.calls == ["core_ssh", "a0d7b954_ssh"]
        issue = installation.issue("ssh_password_login")
        assert issue.translation_placeholders == {"addons": "Terminal & SSH"}
        assert installation.issue("ssh_root_login").severity == "error"

        # Closing the official add-on's port fixes both.
        core.network = {"22/tcp": None}
        assert (await installation.run()).failing_ids == []

        # The community add-on with root and a password fails both again.
        community.options["ssh"].update(username="root", password=SSH_PASSWORD)
        assert (await installation.run()).failing_ids == [
            "ssh_password_login",
            "ssh_root_login",
        ]
        assert installation.issue("ssh_root_login").translation_placeholders == {
            "addons": "Advanced SSH & Web Terminal"
        }
        community.state = "stopped"
        assert (await installation.run()).failing_ids == []

        supervisor.addons.installed.clear()
        assert (await installation.run()).failing_ids == []
    assert SSH_PASSWORD not in caplog.text


async def test_supervisor_errors_skip_the_addon(
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Supervisor that cannot answer leaves the SSH checks passing."""
    caplog.set_level(logging.DEBUG)
    supervisor = FakeSupervisor({})

    async def fail(slug: str) -> FakeAddon:
        raise SupervisorError("boom")

    supervisor.addons.addon_info = fail  # type: ignore[method-assign]
    with (
        patch(IS_HASSIO, return_value=True),
        patch(SUPERVISOR_CLIENT, return_value=supervisor),
    ):
        assert (await installation.run()).failing_ids == []
    assert "Could not read the core_ssh add-on: SupervisorError" in caplog.text


async def test_ignored_issue_stays_ignored(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """Re-creating an issue keeps the user's "ignore"; a fix forgets it."""
    await _break_frames(installation)
    await installation.run()
    ir.async_ignore_issue(hass, DOMAIN, "x_frame_options_disabled", True)
    await installation.run()
    issue = installation.issue("x_frame_options_disabled")
    assert issue is not None
    assert issue.dismissed_version == ha_const.__version__
    assert issue.active
    await _fix_http(installation)
    await installation.run()
    assert installation.issue("x_frame_options_disabled") is None


async def test_disabled_checks_through_options(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """Turning a check off in the options drops its issue, count and result."""
    await _break_frames(installation)
    await _break_root(installation)
    await installation.run()
    assert installation.issue_ids() == {"x_frame_options_disabled", "running_as_root"}

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert "checks" in result["menu_options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "checks"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "checks"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"disabled_checks": ["x_frame_options_disabled"]},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["disabled_checks"] == ["x_frame_options_disabled"]
    assert installation.issue_ids() == {"running_as_root"}
    state = hass.states.get(SENSOR)
    assert state.state == "1"
    assert state.attributes["failing_checks"] == ["running_as_root"]
    response = await hass.services.async_call(
        DOMAIN, "run_security_checks", blocking=True, return_response=True
    )
    assert "x_frame_options_disabled" not in response["passed"]
    assert [f["id"] for f in response["findings"]] == ["running_as_root"]

    # The form shows the current choice and can turn it back on.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "checks"}
    )
    schema_keys = {str(key): key for key in result["data_schema"].schema}
    assert schema_keys["disabled_checks"].description == {
        "suggested_value": ["x_frame_options_disabled"]
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert entry.options["disabled_checks"] == []
    assert installation.issue_ids() == {"x_frame_options_disabled", "running_as_root"}


async def test_action_and_sensor_agree(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """run_security_checks answers with the sensor's failing ids and short summaries."""
    await _break_external_url(installation)
    await _break_key(installation)
    response = await hass.services.async_call(
        DOMAIN, "run_security_checks", blocking=True, return_response=True
    )
    assert response["findings"] == [
        {
            "id": "external_url_not_https",
            "severity": "warning",
            "summary": "The external URL http://myhome.duckdns.org uses http:// "
            "instead of https://.",
        },
        {
            "id": "private_key_world_readable",
            "severity": "error",
            "summary": "Private key files can be read by other users: "
            f"{installation.key}.",
        },
    ]
    assert len(response["passed"]) == 12
    assert "external_url_not_https" not in response["passed"]
    state = hass.states.get(SENSOR)
    assert state.state == "2"
    assert state.attributes["failing_checks"] == [f["id"] for f in response["findings"]]


async def test_action_without_entry(hass: HomeAssistant) -> None:
    """Without a loaded entry there is nothing to run the checks."""
    assert await async_setup_component(hass, DOMAIN, {})
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "run_security_checks", blocking=True, return_response=True
        )
    assert err.value.translation_key == "no_entry_loaded"


async def test_no_secret_reaches_issues_logs_or_diagnostics(
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SSH passwords and YAML credentials are counted, never copied."""
    caplog.set_level(logging.DEBUG)
    await _break_yaml(installation)
    installation.write_config(f"password: [{SECRET}\n", "packages/broken.yaml")
    supervisor = FakeSupervisor(
        {"core_ssh": FakeAddon("Terminal & SSH", {"password": SSH_PASSWORD})}
    )
    with (
        patch(IS_HASSIO, return_value=True),
        patch(SUPERVISOR_CLIENT, return_value=supervisor),
    ):
        response = await hass.services.async_call(
            DOMAIN, "run_security_checks", blocking=True, return_response=True
        )
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert {"secrets_inline", "ssh_password_login", "ssh_root_login"} <= set(
        installation.issue_ids()
    )
    assert diagnostics["checklist"]["failing"]["secrets_inline"] == "warning"
    issues = [
        issue.to_json() | {"placeholders": issue.translation_placeholders}
        for issue in ir.async_get(hass).issues.values()
    ]
    state = hass.states.get(SENSOR)
    for haystack in (
        json.dumps(issues),
        json.dumps(response),
        json.dumps(diagnostics),
        caplog.text,
        str(state),
    ):
        assert SSH_PASSWORD not in haystack
        assert SECRET not in haystack
