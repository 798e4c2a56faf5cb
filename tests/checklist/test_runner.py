"""The shared runner: when it runs, how entries share it, what it reads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import sys
from types import ModuleType
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.http.config import (
    DATA_STORE,
    ActiveConfigType,
    HTTPConfigStore,
)
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.checklist.runner import DATA_CHECKLIST
from custom_components.secure_remote_access.checklist.snapshot import (
    cloud_remote_ui,
    http_settings,
    read_files,
)
from custom_components.secure_remote_access.const import CONF_DOMAINS, DOMAIN
from tests.common import mock_duckdns, mock_entry

from .conftest import Installation

SENSOR = "sensor.myhome_duckdns_org_security_findings"


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def test_runs_once_started(
    hass: HomeAssistant,
    installation: Installation,
    aioclient_mock: AiohttpClientMocker,
    hass_client: ClientSessionGenerator,
) -> None:
    """While Home Assistant starts nothing runs; once started the checks run."""
    mock_duckdns(aioclient_mock)
    hass.set_state(CoreState.starting)
    entry = mock_entry()
    await _setup(hass, entry)
    runner = hass.data[DATA_CHECKLIST]
    assert runner.result is None
    assert hass.states.get(SENSOR).state == "unknown"
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["checklist"] is None

    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await hass.async_block_till_done()
    assert runner.result is not None
    # hass_client's admin has no MFA.
    assert hass.states.get(SENSOR).state == "1"
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["checklist"]["failing"] == {"admin_without_mfa": "warning"}
    assert len(diagnostics["checklist"]["passed"]) == 13
    assert diagnostics["checklist"]["disabled"] == []
    assert "Mock User" not in str(diagnostics)


async def test_runs_every_six_hours(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
) -> None:
    """The interval run picks up changes nobody announced."""
    installation.key.chmod(0o644)
    freezer.tick(timedelta(hours=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert installation.issue("private_key_world_readable") is None
    freezer.tick(timedelta(hours=1, seconds=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert installation.issue("private_key_world_readable") is not None


async def test_entries_share_one_runner(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    installation: Installation,
    aioclient_mock: AiohttpClientMocker,
) -> None:
    """Two entries: one runner, a sensor each, disabled checks add up."""
    mock_duckdns(aioclient_mock)
    installation.system_info.update(installation_type="Home Assistant Core")
    first = mock_entry()
    await _setup(hass, first)
    runner = hass.data[DATA_CHECKLIST]
    assert installation.issue("running_as_root") is not None

    second = mock_entry(**{CONF_DOMAINS: ["cabin.duckdns.org"]})
    second.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        second, options={"disabled_checks": ["running_as_root", "removed_check"]}
    )
    await _setup(hass, second)
    assert hass.data[DATA_CHECKLIST] is runner
    assert runner.disabled_checks == frozenset({"running_as_root"})
    freezer.tick(timedelta(seconds=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert installation.issue("running_as_root") is None
    assert hass.states.get(SENSOR).state == "0"
    assert hass.states.get("sensor.cabin_duckdns_org_security_findings").state == "0"

    # Unloading the second entry turns the check back on.
    assert await hass.config_entries.async_unload(second.entry_id)
    freezer.tick(timedelta(seconds=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert installation.issue("running_as_root") is not None
    assert hass.data[DATA_CHECKLIST] is runner

    # The last entry stops the runner; the issues stay for the next start.
    assert await hass.config_entries.async_unload(first.entry_id)
    await hass.async_block_till_done()
    assert DATA_CHECKLIST not in hass.data
    assert installation.issue("running_as_root") is not None

    # Deleting entries forgets the checklist's issues with the last one.
    await hass.config_entries.async_remove(second.entry_id)
    assert installation.issue("running_as_root") is not None
    await hass.config_entries.async_remove(first.entry_id)
    assert installation.issue("running_as_root") is None


async def test_managed_key_files(
    freezer: FrozenDateTimeFactory,
    hass: HomeAssistant,
    installation: Installation,
    entry: MockConfigEntry,
    tmp_path: Path,
) -> None:
    """Key files other parts of the integration manage are checked too."""
    key = tmp_path / "managed.key"
    key.write_text("not really a key", encoding="utf-8")
    key.chmod(0o640)
    runner = hass.data[DATA_CHECKLIST]
    remove = runner.async_add_key_file(str(key))
    freezer.tick(timedelta(seconds=11))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    issue = installation.issue("private_key_world_readable")
    assert issue is not None
    assert issue.translation_placeholders == {"paths": str(key), "modes": "0640"}
    remove()
    await installation.run()
    assert installation.issue("private_key_world_readable") is None


async def test_stop_shuts_the_runner_down(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """Home Assistant stopping stops the schedule."""
    runner = hass.data[DATA_CHECKLIST]
    installation.key.chmod(0o644)
    await hass.async_stop(force=True)
    assert DATA_CHECKLIST not in hass.data
    runner.async_request_run()
    await hass.async_block_till_done()
    assert installation.issue_ids() == set()


def _store(hass: HomeAssistant, active: ActiveConfigType) -> HTTPConfigStore:
    store = HTTPConfigStore(hass)
    store._stable = {"use_x_frame_options": True}  # type: ignore[typeddict-item]
    store._pending = {"use_x_frame_options": False}  # type: ignore[typeddict-item]
    store._active_config_type = active
    return store


@pytest.mark.parametrize(
    ("active", "frames"),
    [
        (ActiveConfigType.STABLE, True),
        (ActiveConfigType.PENDING, False),
        (ActiveConfigType.DEFAULT, True),
    ],
)
async def test_http_settings_follow_the_active_slot(
    hass: HomeAssistant,
    installation: Installation,
    active: ActiveConfigType,
    frames: bool,
) -> None:
    """The snapshot reads the stored config slot the server started with."""
    hass.data[DATA_STORE] = _store(hass, active)
    settings = http_settings(hass)
    assert settings is not None
    assert settings.use_x_frame_options is frames


async def test_http_not_set_up(hass: HomeAssistant) -> None:
    """Without the http component the http checks have nothing to judge."""
    assert http_settings(hass) is None


async def test_http_without_stored_config(
    hass: HomeAssistant, installation: Installation
) -> None:
    """Defaults apply when the store is gone."""
    del hass.data[DATA_STORE]
    settings = http_settings(hass)
    assert settings is not None
    assert settings.use_x_frame_options
    assert not settings.use_x_forwarded_for


class CloudNotAvailable(HomeAssistantError):  # noqa: N818 (the cloud component's name)
    """The cloud component's error when the remote UI is off."""


def _fake_cloud(url: str | None) -> ModuleType:
    """The two names the snapshot imports from the cloud component."""
    module = ModuleType("homeassistant.components.cloud")

    def async_remote_ui_url(hass: HomeAssistant) -> str:
        if url is None:
            raise CloudNotAvailable
        return url

    module.CloudNotAvailable = CloudNotAvailable  # type: ignore[attr-defined]
    module.async_remote_ui_url = async_remote_ui_url  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    ("url", "expected"), [("https://abc.ui.nabu.casa", True), (None, False)]
)
async def test_cloud_remote_ui(
    hass: HomeAssistant, url: str | None, expected: bool
) -> None:
    """Home Assistant Cloud's remote UI counts only while it is on."""
    assert not cloud_remote_ui(hass)
    hass.config.components.add("cloud")
    with patch.dict(sys.modules, {"homeassistant.components.cloud": _fake_cloud(url)}):
        assert cloud_remote_ui(hass) is expected


async def test_http_without_tls_passes_with_cloud(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """Plain HTTP behind Home Assistant Cloud's remote UI is fine."""
    await installation.apply_http(ssl_certificate=None, ssl_key=None)
    assert (await installation.run()).failing_ids == ["http_without_tls"]
    hass.config.components.add("cloud")
    cloud = _fake_cloud("https://abc.ui.nabu.casa")
    with patch.dict(sys.modules, {"homeassistant.components.cloud": cloud}):
        assert (await installation.run()).failing_ids == []


def test_missing_key_file(tmp_path: Path) -> None:
    """A key file that cannot be read is not judged."""
    _, keys = read_files(tmp_path / "configuration.yaml", [str(tmp_path / "gone.key")])
    assert keys[0].mode is None


async def test_remove_entry_keeps_issues_of_remaining(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """The entry's own issues go, the checklist's stay while entries remain."""
    other = MockConfigEntry(domain=DOMAIN, data={CONF_DOMAINS: ["x.duckdns.org"]})
    other.add_to_hass(hass)
    installation.key.chmod(0o644)
    await installation.run()
    await hass.config_entries.async_remove(entry.entry_id)
    assert installation.issue("private_key_world_readable") is not None


async def test_listener_removal(
    hass: HomeAssistant, installation: Installation, entry: MockConfigEntry
) -> None:
    """Listeners stop being called once removed."""
    calls: list[Any] = []
    runner = hass.data[DATA_CHECKLIST]
    remove = runner.async_add_listener(lambda: calls.append(1))
    await installation.run()
    remove()
    await installation.run()
    assert calls == [1]
